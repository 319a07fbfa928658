//! `pushwire config check FILE`: the settings `pushwire serve --config FILE` would
//! run with, each with where it came from, or one line saying what is wrong.
//!
//! It runs the server's own path: the file is read by [`config_file`] (each value
//! through its flag's parser), becomes the flags' defaults, and the command line is
//! parsed by clap with the same flags, `PUSHWIRE_*` variables included. The list is
//! made from clap's definition of the serve flags, so a new flag shows up here
//! without an edit.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, Command, CommandFactory, FromArgMatches, Subcommand};

use super::config_file::{self, FileSetting};
use super::serve::ServeArgs;
use super::{Cli, one_line};

/// The subcommands of `pushwire config`.
#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Check a settings file: print the settings the server would run with and
    /// where each came from (default, the file and its line, a PUSHWIRE_* variable,
    /// a flag); fail on an unknown key or a bad value, naming it and its line.
    #[command(long_about = CHECK_ABOUT)]
    Check(CheckArgs),
}

const CHECK_ABOUT: &str = "\
Check a settings file: print the settings `pushwire serve --config FILE` would run \
with, one per line as TOML, each followed by where it came from: `default`, the \
file and its line (`pushwire.toml:3`), a PUSHWIRE_* variable, or a flag given \
after FILE. A setting that holds a secret (--api-key, --token-secret, --metrics-key, \
--admin-password, --pusher-app, --mercure-issuer, --mercure-compat) that is set shows as a comment, \
`# api-key is set (hidden)`, so that the listing stays a settings file that sets \
nothing it does not show.

An unknown key, a value the flag refuses, a TLS certificate or key that cannot be \
used, or a token key (Mercure's too) that cannot be read fails with one line on stderr naming the \
key and the file's line, and exit status 2; nothing is printed on stdout then.";

/// `pushwire config check FILE [FLAGS]`.
#[derive(Debug, Args)]
#[command(mut_arg("config", |arg| arg.hide(true)))]
pub(crate) struct CheckArgs {
    /// The settings file (TOML, by the flags' names).
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Any flag of `pushwire serve`, to see how it combines with the file.
    // Boxed: the serve flags are many (as in `Command::Serve`).
    #[command(flatten)]
    serve: Box<ServeArgs>,
}

impl CheckArgs {
    /// The file to check.
    pub(crate) fn file(&self) -> &Path {
        &self.file
    }
}

/// Where this subcommand sits below the top-level command.
const PATH: [&str; 2] = ["config", "check"];

/// Flags that are not settings.
const NOT_SETTINGS: [&str; 4] = ["file", "config", "help", "version"];

/// Runs `pushwire config check` for the command line `raw` (whose file is `file`).
pub(crate) fn run(raw: &[OsString], file: &Path) -> ExitCode {
    match check(raw, file) {
        Ok(listing) => {
            print!("{listing}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("pushwire: error: {err}");
            ExitCode::from(2)
        }
    }
}

/// The listing, or the one line saying what is wrong.
fn check(raw: &[OsString], file: &Path) -> Result<String, String> {
    let command = Cli::command();
    let settings = config_file::read(file, &command).map_err(|e| e.to_string())?;
    let mut command = config_file::apply(command, &settings, &[&PATH]);
    let matches = command
        .try_get_matches_from_mut(raw)
        .map_err(|err| one_line(&err.render().to_string()))?;
    let matches = PATH
        .iter()
        .try_fold(&matches, |m, name| m.subcommand_matches(name))
        .ok_or("no `config check` on the command line")?;
    let definition = PATH
        .iter()
        .try_fold(&command, |c, name| c.find_subcommand(name))
        .ok_or("no `config check` command")?;
    let origin = |id: &str| origin(definition, matches, &settings, file, id);

    let args = CheckArgs::from_arg_matches(matches).map_err(|e| e.to_string())?;
    let config = args.serve.into_config()?;
    if let Some(tls) = &config.tls {
        tls.check().map_err(|err| {
            format!(
                "tls-cert ({}) / tls-key ({}): {err}",
                origin("tls_cert"),
                origin("tls_key")
            )
        })?;
    }
    pushwire::auth::TokenVerifier::from_config(&config.auth).map_err(|err| {
        format!(
            "token-public-key ({}) / token-jwks ({}): {err}",
            origin("token_public_key"),
            origin("token_jwks")
        )
    })?;
    if let Some(mercure) = &config.mercure {
        pushwire::interop::mercure::MercureAuth::new(mercure).map_err(|err| {
            format!(
                "mercure-issuer ({}) / mercure-compat ({}): {err}",
                origin("mercure_issuer"),
                origin("mercure_compat")
            )
        })?;
    }

    let mut out = format!(
        "# the settings of `pushwire serve --config {}`, each with where it came from\n",
        file.display()
    );
    // In the order of `--help` (setting defaults moved the file's flags to the end).
    let pristine = Cli::command();
    let order = PATH
        .iter()
        .try_fold(&pristine, |c, name| c.find_subcommand(name))
        .ok_or("no `config check` command")?;
    for id in order.get_arguments().map(|arg| arg.get_id().as_str()) {
        let Some(arg) = definition.get_arguments().find(|a| a.get_id() == id) else {
            continue;
        };
        if NOT_SETTINGS.contains(&id) || arg.is_positional() {
            continue;
        }
        let key = arg.get_long().unwrap_or(id);
        let values: Vec<String> = matches
            .get_raw(id)
            .map(|raw| raw.map(|v| v.to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        let many = arg.get_num_args().is_some_and(|n| n.max_values() > 1)
            || matches!(arg.get_action(), clap::ArgAction::Append)
            || arg.get_value_delimiter().is_some();
        let setting = if values.is_empty() && !many {
            format!("# {key} is not set")
        } else if arg.is_hide_env_values_set() {
            format!("# {key} is set (hidden)")
        } else if many {
            let items: Vec<String> = values.iter().map(|v| toml_value(v)).collect();
            format!("{key} = [{}]", items.join(", "))
        } else {
            format!("{key} = {}", toml_value(&values.join(",")))
        };
        out.push_str(&format!("{setting:<48} # {}\n", origin(id)));
    }
    Ok(out)
}

/// Where the value of flag `id` came from: `default`, `FILE:LINE`, the variable,
/// or the flag.
fn origin(
    definition: &Command,
    matches: &ArgMatches,
    settings: &[FileSetting],
    file: &Path,
    id: &str,
) -> String {
    let arg = definition.get_arguments().find(|a| a.get_id() == id);
    match matches.value_source(id) {
        Some(ValueSource::CommandLine) => arg
            .and_then(|a| a.get_long())
            .map_or_else(|| String::from("the command line"), |l| format!("--{l}")),
        Some(ValueSource::EnvVariable) => arg.and_then(|a| a.get_env()).map_or_else(
            || String::from("the environment"),
            |e| e.to_string_lossy().into_owned(),
        ),
        _ => match settings.iter().find(|s| s.id == id) {
            Some(setting) => format!("{}:{}", file.display(), setting.line),
            None => String::from("default"),
        },
    }
}

/// `value` as TOML: a number or boolean as it is, anything else as a string.
fn toml_value(value: &str) -> String {
    let number = value.parse::<i64>().is_ok_and(|n| n.to_string() == value);
    if number || value == "true" || value == "false" {
        value.to_owned()
    } else {
        // A JSON string is a TOML basic string (the same escapes).
        serde_json::to_string(value).unwrap_or_else(|_| format!("{value:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_printed_as_toml() {
        assert_eq!(toml_value("8001"), "8001");
        assert_eq!(toml_value("true"), "true");
        assert_eq!(toml_value("0x10"), "\"0x10\"");
        assert_eq!(toml_value("007"), "\"007\"");
        assert_eq!(toml_value("a \"b\"\n"), "\"a \\\"b\\\"\\n\"");
    }
}
