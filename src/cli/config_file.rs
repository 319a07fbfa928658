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

use clap::Command;

/// The flag that names the file, and its variable.
const FLAG: &str = "--config";
const VARIABLE: &str = "PUSHWIRE_CONFIG";

/// Why a configuration file cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigFileError {
    /// The file cannot be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("config file {path} is not valid TOML: {reason}")]
    Parse { path: PathBuf, reason: String },
    /// A key that names no setting.
    #[error(
        "config file {path}: unknown setting {key:?} (the settings are the flags of `pushwire serve --help`)"
    )]
    Unknown { path: PathBuf, key: String },
    /// A value of a type no flag takes (a table, a date).
    #[error("config file {path}: {key} must be a string, a number, a boolean or a list of those")]
    Type { path: PathBuf, key: String },
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

/// The settings of the file at `path`: (flag id, values) pairs, checked against
/// the flags of `serve` (the arguments of `command` that have a long name).
pub(crate) fn read(
    path: &Path,
    serve: &Command,
) -> Result<Vec<(String, Vec<String>)>, ConfigFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    let table: toml::Table =
        text.parse()
            .map_err(|err: toml::de::Error| ConfigFileError::Parse {
                path: path.to_owned(),
                reason: err.message().to_owned(),
            })?;
    let mut settings = Vec::new();
    for (key, value) in table {
        let long = key.replace('_', "-");
        let Some(arg) = serve
            .get_arguments()
            .find(|arg| arg.get_long() == Some(long.as_str()) && long != "config")
        else {
            return Err(ConfigFileError::Unknown {
                path: path.to_owned(),
                key,
            });
        };
        let scalar = |value: &toml::Value| match value {
            toml::Value::String(s) => Some(s.clone()),
            toml::Value::Integer(n) => Some(n.to_string()),
            toml::Value::Float(x) => Some(x.to_string()),
            toml::Value::Boolean(b) => Some(b.to_string()),
            _ => None,
        };
        let values = match &value {
            toml::Value::Array(items) => items.iter().map(scalar).collect::<Option<Vec<_>>>(),
            other => scalar(other).map(|v| vec![v]),
        }
        .ok_or_else(|| ConfigFileError::Type {
            path: path.to_owned(),
            key: key.clone(),
        })?;
        settings.push((arg.get_id().to_string(), values));
    }
    Ok(settings)
}

/// `command` with the file's settings as the defaults of its serve flags (on the
/// top level and on the `serve` subcommand, which share them).
pub(crate) fn apply(mut command: Command, settings: &[(String, Vec<String>)]) -> Command {
    fn set(command: Command, settings: &[(String, Vec<String>)]) -> Command {
        settings.iter().fold(command, |command, (id, values)| {
            // clap keeps defaults for the life of the program; this runs once.
            let values: Vec<&'static str> = values
                .iter()
                .map(|v| &*Box::leak(v.clone().into_boxed_str()))
                .collect();
            command.mut_arg(id, |arg| arg.default_values(values))
        })
    }
    command = set(command, settings);
    command.mut_subcommand("serve", |serve| set(serve, settings))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
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
