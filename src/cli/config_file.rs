//! `--config FILE` (or `PUSHWIRE_CONFIG`): the server's settings from a TOML file.
//!
//! The file holds the same settings as the flags, by the flags' names (`port = 8001`,
//! `broker = "redis://127.0.0.1:6379/0"`, `history-ttl = "5m"`, `presence = ["chat",
//! "news"]`; `history_ttl` works too). Its values become the flags' defaults, so the
//! order of precedence is: built-in defaults < the file < `PUSHWIRE_*` variables <
//! flags. Every value goes through the flag's own parser, and an unknown key or a
//! malformed file stops the program with one line naming the file.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{Arg, ArgAction, Command};

/// The flag that names the file, and its variable.
const FLAG: &str = "--config";
const VARIABLE: &str = "PUSHWIRE_CONFIG";

/// Why a configuration file cannot be used. Each message names the file, and
/// the line where the file says something wrong.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigFileError {
    /// The file cannot be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("config file {path}:{line}: not valid TOML: {reason}")]
    Parse {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    /// A key that names no setting.
    #[error(
        "config file {path}:{line}: {key}: unknown setting (the settings are the flags of `pushwire serve --help`)"
    )]
    Unknown {
        path: PathBuf,
        line: usize,
        key: String,
    },
    /// A value of a type no flag takes (a table, a date).
    #[error(
        "config file {path}:{line}: {key}: must be a string, a number, a boolean or a list of those"
    )]
    Type {
        path: PathBuf,
        line: usize,
        key: String,
    },
    /// A value the flag's own parser refuses.
    #[error("config file {path}:{line}: {key}: {reason}")]
    Value {
        path: PathBuf,
        line: usize,
        key: String,
        reason: String,
    },
}

/// One setting of the file: the flag it sets, its values, and where it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileSetting {
    /// The clap id of the flag (`history_size`).
    pub(crate) id: String,
    /// The key as the file writes it (`history-size` or `history_size`).
    pub(crate) key: String,
    /// Its values as text, each one accepted by the flag's parser.
    pub(crate) values: Vec<String>,
    /// The line of the key, from 1.
    pub(crate) line: usize,
}

/// The file named by `--config FILE` / `--config=FILE` in `args` (after the program
/// name), or else by `PUSHWIRE_CONFIG`.
pub(crate) fn path(args: &[OsString]) -> Option<PathBuf> {
    let mut iter = args.iter().skip(1);
    while let Some(arg) = iter.next() {
        if arg == FLAG {
            return iter.next().map(PathBuf::from);
        }
        if let Some(value) = arg
            .to_str()
            .and_then(|a| a.strip_prefix(FLAG))
            .and_then(|rest| rest.strip_prefix('='))
        {
            return Some(PathBuf::from(value));
        }
    }
    std::env::var_os(VARIABLE)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The settings of the file at `path`, in the file's order, checked against the
/// flags of `serve` (the arguments of `command` that have a long name): each key
/// must name a flag, and each value must pass that flag's own parser.
pub(crate) fn read(path: &Path, serve: &Command) -> Result<Vec<FileSetting>, ConfigFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(path, &text, serve)
}

/// [`read`] on the file's text.
fn parse(path: &Path, text: &str, serve: &Command) -> Result<Vec<FileSetting>, ConfigFileError> {
    let line = |offset: usize| line_of(text, offset);
    let table = toml::de::DeTable::parse(text).map_err(|err| ConfigFileError::Parse {
        path: path.to_owned(),
        line: line(err.span().map_or(0, |span| span.start)),
        reason: err.message().trim().to_owned(),
    })?;
    let mut entries: Vec<_> = table.get_ref().iter().collect();
    entries.sort_by_key(|(key, _)| key.span().start);
    let mut settings = Vec::new();
    for (key, value) in entries {
        let at = line(key.span().start);
        let name = key.get_ref().to_string();
        if name == PUSHER_TABLE {
            let values = pusher_apps(value.get_ref(), &line).map_err(|(at, reason)| {
                ConfigFileError::Value {
                    path: path.to_owned(),
                    line: at,
                    key: String::from("pusher.apps"),
                    reason,
                }
            })?;
            let arg = serve
                .get_arguments()
                .find(|arg| arg.get_long() == Some(PUSHER_FLAG));
            if let Some(arg) = arg {
                check_values(arg, &values).map_err(|reason| ConfigFileError::Value {
                    path: path.to_owned(),
                    line: at,
                    key: String::from("pusher.apps"),
                    reason,
                })?;
                settings.push(FileSetting {
                    id: arg.get_id().to_string(),
                    key: String::from("pusher.apps"),
                    values,
                    line: at,
                });
            }
            continue;
        }
        if name == MERCURE_TABLE && matches!(value.get_ref(), toml::de::DeValue::Table(_)) {
            let lines = mercure_settings(value.get_ref(), &line).map_err(|(at, key, reason)| {
                ConfigFileError::Value {
                    path: path.to_owned(),
                    line: at,
                    key,
                    reason,
                }
            })?;
            for (key, flag, values, at) in lines {
                let Some(arg) = serve
                    .get_arguments()
                    .find(|arg| arg.get_long() == Some(flag.as_str()))
                else {
                    return Err(ConfigFileError::Unknown {
                        path: path.to_owned(),
                        line: at,
                        key,
                    });
                };
                check_values(arg, &values).map_err(|reason| ConfigFileError::Value {
                    path: path.to_owned(),
                    line: at,
                    key: key.clone(),
                    reason,
                })?;
                settings.push(FileSetting {
                    id: arg.get_id().to_string(),
                    key,
                    values,
                    line: at,
                });
            }
            continue;
        }
        let long = name.replace('_', "-");
        let Some(arg) = serve
            .get_arguments()
            .find(|arg| arg.get_long() == Some(long.as_str()) && long != "config")
        else {
            return Err(ConfigFileError::Unknown {
                path: path.to_owned(),
                line: at,
                key: name,
            });
        };
        let values = match value.get_ref() {
            toml::de::DeValue::Array(items) => items
                .iter()
                .map(|item| scalar(item.get_ref()))
                .collect::<Option<Vec<_>>>(),
            other => scalar(other).map(|v| vec![v]),
        }
        .ok_or_else(|| ConfigFileError::Type {
            path: path.to_owned(),
            line: at,
            key: name.clone(),
        })?;
        check_values(arg, &values).map_err(|reason| ConfigFileError::Value {
            path: path.to_owned(),
            line: line(value.span().start),
            key: name.clone(),
            reason,
        })?;
        settings.push(FileSetting {
            id: arg.get_id().to_string(),
            key: name,
            values,
            line: at,
        });
    }
    Ok(settings)
}

/// The table of Pusher apps: `[[pusher.apps]]`, each one table.
const PUSHER_TABLE: &str = "pusher";

/// The flag each app of the table becomes.
const PUSHER_FLAG: &str = "pusher-app";

/// The keys of an app's table that become options of its line (the others are
/// `id`, `key`, `secret` and `webhooks`).
const PUSHER_OPTIONS: &[&str] = &[
    "enabled",
    "client-events",
    "namespace",
    "max-connections",
    "max-event-size",
    "max-presence-members",
    "max-client-events-per-second",
    "activity-timeout",
];

/// The `[[pusher.apps]]` tables as `--pusher-app` lines
/// (`ID:KEY:SECRET?option=value&…`), or the line and reason of the first problem.
fn pusher_apps(
    value: &toml::de::DeValue<'_>,
    line: &dyn Fn(usize) -> usize,
) -> Result<Vec<String>, (usize, String)> {
    use toml::de::DeValue;
    let shape = String::from("write each app as a [[pusher.apps]] table");
    let DeValue::Table(table) = value else {
        return Err((0, shape));
    };
    let mut lines = Vec::new();
    for (key, apps) in table.iter() {
        let at = line(key.span().start);
        if key.get_ref().as_ref() != "apps" {
            return Err((
                at,
                format!("pusher.{}: unknown setting (only apps)", key.get_ref()),
            ));
        }
        let DeValue::Array(apps) = apps.get_ref() else {
            return Err((at, shape));
        };
        for app in apps.iter() {
            let at = line(app.span().start);
            let DeValue::Table(app) = app.get_ref() else {
                return Err((at, shape.clone()));
            };
            lines.push(pusher_app_line(app).map_err(|reason| (at, reason))?);
        }
    }
    Ok(lines)
}

/// One `[[pusher.apps]]` table as its `--pusher-app` line.
fn pusher_app_line(app: &toml::de::DeTable<'_>) -> Result<String, String> {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    use toml::de::DeValue;
    let encode = |text: &str| utf8_percent_encode(text, NON_ALPHANUMERIC).to_string();
    let text = |name: &str| -> Result<String, String> {
        match app.get(name).map(|v| v.get_ref()) {
            Some(DeValue::String(s)) => Ok(s.to_string()),
            Some(_) => Err(format!("{name} must be a string")),
            None => Err(format!("an app needs {name}")),
        }
    };
    let (id, key, secret) = (text("id")?, text("key")?, text("secret")?);
    let mut options = Vec::new();
    for (name, value) in app.iter() {
        let name = name.get_ref().replace('_', "-");
        match name.as_str() {
            "id" | "key" | "secret" => {}
            "webhooks" => {
                let DeValue::Array(hooks) = value.get_ref() else {
                    return Err(String::from(
                        "webhooks is a list of tables: [{ url = \"…\", events = [\"…\"] }]",
                    ));
                };
                for hook in hooks.iter() {
                    let DeValue::Table(hook) = hook.get_ref() else {
                        return Err(String::from("a webhook is a table: { url = \"…\" }"));
                    };
                    let Some(DeValue::String(url)) = hook.get("url").map(|v| v.get_ref()) else {
                        return Err(String::from("a webhook needs url, a string"));
                    };
                    options.push(format!("webhook={}", encode(url)));
                    match hook.get("events").map(|v| v.get_ref()) {
                        None => {}
                        Some(DeValue::Array(events)) => {
                            let events = events
                                .iter()
                                .map(|e| match e.get_ref() {
                                    DeValue::String(s) => Ok(s.to_string()),
                                    _ => Err(String::from("webhook events are strings")),
                                })
                                .collect::<Result<Vec<_>, _>>()?;
                            options.push(format!("webhook-events={}", encode(&events.join(","))));
                        }
                        Some(_) => return Err(String::from("webhook events are a list")),
                    }
                    if let Some(other) = hook
                        .iter()
                        .map(|(k, _)| k.get_ref().to_string())
                        .find(|k| k != "url" && k != "events")
                    {
                        return Err(format!("{other}: unknown webhook setting (url, events)"));
                    }
                }
            }
            option if PUSHER_OPTIONS.contains(&option) => {
                let value = scalar(value.get_ref())
                    .ok_or_else(|| format!("{option} must be a string, a number or a boolean"))?;
                options.push(format!("{option}={}", encode(&value)));
            }
            other => return Err(format!("{other}: unknown Pusher app setting")),
        }
    }
    let mut line = format!("{id}:{key}:{}", encode(&secret));
    if !options.is_empty() {
        line.push('?');
        line.push_str(&options.join("&"));
    }
    Ok(line)
}

/// The Mercure hub's table: `[mercure]`, its keys the `--mercure-*` flags without
/// the prefix (`enabled` is `--mercure`), its issuers `[[mercure.issuers]]` tables.
const MERCURE_TABLE: &str = "mercure";

/// One setting of the `[mercure]` table: its key as written (`mercure.audience`),
/// the flag it sets (`mercure-audience`), its values, and its line.
type MercureSetting = (String, String, Vec<String>, usize);

/// The `[mercure]` table as settings of the `--mercure*` flags, or the line, key
/// and reason of the first problem. A secret never goes into a reason.
fn mercure_settings(
    value: &toml::de::DeValue<'_>,
    line: &dyn Fn(usize) -> usize,
) -> Result<Vec<MercureSetting>, (usize, String, String)> {
    use toml::de::DeValue;
    let DeValue::Table(table) = value else {
        return Err((0, String::from("mercure"), String::from("must be a table")));
    };
    let mut entries: Vec<_> = table.iter().collect();
    entries.sort_by_key(|(key, _)| key.span().start);
    let mut settings = Vec::new();
    for (key, value) in entries {
        let at = line(key.span().start);
        let name = key.get_ref().replace('_', "-");
        let shown = format!("mercure.{}", key.get_ref());
        if name == "issuers" {
            let shape =
                String::from("write each issuer as a [[mercure.issuers]] table with iss and key");
            let DeValue::Array(issuers) = value.get_ref() else {
                return Err((at, shown, shape));
            };
            let mut values = Vec::new();
            for issuer in issuers.iter() {
                let at = line(issuer.span().start);
                let DeValue::Table(issuer) = issuer.get_ref() else {
                    return Err((at, shown, shape));
                };
                let text = |field: &str| match issuer.get(field).map(|v| v.get_ref()) {
                    Some(DeValue::String(s)) => Ok(s.to_string()),
                    Some(_) => Err(format!("{field} must be a string")),
                    None => Err(format!("an issuer needs {field}")),
                };
                let iss = text("iss").map_err(|reason| (at, shown.clone(), reason))?;
                let key = text("key").map_err(|reason| (at, shown.clone(), reason))?;
                if let Some(other) = issuer
                    .iter()
                    .map(|(k, _)| k.get_ref().to_string())
                    .find(|k| k != "iss" && k != "key")
                {
                    return Err((
                        at,
                        shown,
                        format!("{other}: unknown issuer setting (iss, key)"),
                    ));
                }
                values.push(format!("{iss}={key}"));
            }
            settings.push((shown, String::from("mercure-issuer"), values, at));
            continue;
        }
        let flag = match name.as_str() {
            "enabled" => String::from("mercure"),
            "issuer" => {
                return Err((
                    at,
                    shown,
                    String::from(
                        "write each issuer as a [[mercure.issuers]] table with iss and key",
                    ),
                ));
            }
            other => format!("mercure-{other}"),
        };
        let value = scalar(value.get_ref()).ok_or_else(|| {
            (
                at,
                shown.clone(),
                String::from("must be a string, a number or a boolean"),
            )
        })?;
        settings.push((shown, flag, vec![value], at));
    }
    Ok(settings)
}

/// A TOML value a flag can take, as the text given on the command line.
fn scalar(value: &toml::de::DeValue<'_>) -> Option<String> {
    match value {
        toml::de::DeValue::String(s) => Some(s.to_string()),
        toml::de::DeValue::Integer(n) => i64::from_str_radix(n.as_str(), n.radix())
            .ok()
            .map(|n| n.to_string()),
        toml::de::DeValue::Float(x) => Some(x.as_str().to_owned()),
        toml::de::DeValue::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The line (from 1) of byte `offset` of `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(0, |before| before.matches('\n').count())
        + 1
}

/// Runs `values` through `arg`'s own parser, as if each were given as
/// `--flag=value`: one line saying what is wrong, or nothing.
fn check_values(arg: &Arg, values: &[String]) -> Result<(), String> {
    let Some(long) = arg.get_long() else {
        return Ok(());
    };
    let probe = Command::new("pushwire")
        .no_binary_name(true)
        .disable_help_flag(true)
        .disable_version_flag(true)
        .arg(
            arg.clone()
                .env(None::<&str>)
                .required(false)
                .action(ArgAction::Append)
                .num_args(1),
        );
    let args = values.iter().map(|value| format!("--{long}={value}"));
    match probe.try_get_matches_from(args) {
        Ok(_) => Ok(()),
        Err(err) => {
            let rendered = err.render().to_string();
            let first = rendered.lines().next().unwrap_or_default();
            Err(first.strip_prefix("error: ").unwrap_or(first).to_owned())
        }
    }
}

/// `command` with the file's settings as the defaults of its serve flags: on the
/// top level and on each subcommand named in `paths` (`["serve"]`, `["config",
/// "check"]`), which share them.
pub(crate) fn apply(mut command: Command, settings: &[FileSetting], paths: &[&[&str]]) -> Command {
    fn set(command: Command, settings: &[FileSetting]) -> Command {
        settings.iter().fold(command, |command, setting| {
            // clap keeps defaults for the life of the program; this runs once.
            let values: Vec<&'static str> = setting
                .values
                .iter()
                .map(|v| &*Box::leak(v.clone().into_boxed_str()))
                .collect();
            command.mut_arg(&setting.id, |arg| arg.default_values(values))
        })
    }
    fn at(command: Command, path: &[&str], settings: &[FileSetting]) -> Command {
        match path.split_first() {
            None => set(command, settings),
            Some((name, rest)) => {
                let name = name.to_string();
                command.mut_subcommand(name, |sub| at(sub, rest, settings))
            }
        }
    }
    command = set(command, settings);
    for path in paths {
        command = at(command, path, settings);
    }
    command
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    fn parsed(text: &str) -> Result<Vec<FileSetting>, String> {
        parse(Path::new("p.toml"), text, &crate::cli::Cli::command()).map_err(|e| e.to_string())
    }

    #[test]
    fn settings_keep_their_line_and_their_flag() {
        let settings = parsed(
            "# a comment\n\nport = 8001\nhistory_ttl = \"10m\"\npresence = [\"a\", \"b\"]\n",
        )
        .expect("valid");
        let lines: Vec<_> = settings
            .iter()
            .map(|s| (s.id.as_str(), s.line, s.values.clone()))
            .collect();
        assert_eq!(
            lines,
            [
                ("port", 3, vec![String::from("8001")]),
                ("history_ttl", 4, vec![String::from("10m")]),
                ("presence", 5, vec![String::from("a"), String::from("b")]),
            ]
        );
    }

    #[test]
    fn errors_name_the_file_line_and_key() {
        assert_eq!(
            parsed("port = 1\nport = 2\n")
                .unwrap_err()
                .split(": not valid TOML")
                .next(),
            Some("config file p.toml:2")
        );
        assert!(
            parsed("\n\nmax-header-size = 10\n")
                .unwrap_err()
                .starts_with("config file p.toml:3: max-header-size: invalid value '10'")
        );
        assert!(
            parsed("bind = 1.5\nbogus = true\n")
                .unwrap_err()
                .starts_with("config file p.toml:1: bind: invalid value '1.5'")
        );
        assert!(
            parsed("config = \"other.toml\"\n")
                .unwrap_err()
                .starts_with("config file p.toml:1: config: unknown setting")
        );
    }

    #[test]
    fn the_flag_names_the_file_in_either_form() {
        assert_eq!(
            path(&os(&["pushwire", "--port", "1", "--config", "a.toml"])),
            Some(PathBuf::from("a.toml"))
        );
        assert_eq!(
            path(&os(&["pushwire", "serve", "--config=b.toml"])),
            Some(PathBuf::from("b.toml"))
        );
    }
}
