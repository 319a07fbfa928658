//! `pushwire token`: mints a token for a client, as an application's backend would.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};

use pushwire::auth::{self, Claims, Pattern, SigningKey};

/// What `pushwire token --help` explains.
pub(crate) const TOKEN_ABOUT: &str = "\
Print a token (JWT) for a client of a server that requires them.

A connection token names the user (--sub) and what it may do on which topics
(--topic PATTERN=PERMISSIONS, repeatable; a pattern is a topic name or a prefix
ending in '*'; permissions are sub, pub and presence). A subscription token
(--subscription TOPIC) lets that user subscribe to one topic.

Sign with the server's shared secret (--secret or PUSHWIRE_TOKEN_SECRET; HS256),
or with a private key whose public key the server has (--private-key FILE with
--alg RS256 or ES256, optionally --kid).

Examples:
  pushwire token --secret S --sub alice --topic 'chat:*=sub,pub,presence' --topic news=sub --ttl 1h
  pushwire token --private-key key.pem --alg ES256 --kid k1 --sub alice --subscription chat:room-42";

/// Flags of `pushwire token`.
#[derive(Debug, Args)]
pub(crate) struct TokenArgs {
    /// The user id (sub claim).
    #[arg(long, value_name = "USER")]
    sub: String,

    /// A permission grant, PATTERN=PERMISSIONS such as 'chat:*=sub,pub,presence';
    /// repeat for several.
    #[arg(long = "topic", value_name = "PATTERN=PERMISSIONS", value_parser = parse_grant)]
    topics: Vec<(String, Vec<String>)>,

    /// Mint a subscription token for this one topic instead.
    #[arg(long, value_name = "TOPIC", conflicts_with = "topics")]
    subscription: Option<String>,

    /// How long the token is valid, such as 1h or 10m.
    #[arg(long, default_value = "1h", value_name = "DURATION", value_parser = parse_ttl)]
    ttl: Duration,

    /// The audience (aud claim).
    #[arg(long, value_name = "AUD")]
    aud: Option<String>,

    /// The issuer (iss claim).
    #[arg(long, value_name = "ISS")]
    iss: Option<String>,

    /// The HS256 shared secret (the server's --token-secret).
    #[arg(
        long,
        env = "PUSHWIRE_TOKEN_SECRET",
        value_name = "SECRET",
        hide_env_values = true,
        conflicts_with = "private_key"
    )]
    secret: Option<String>,

    /// Sign with this PEM private key (RSA for RS256, EC P-256 for ES256).
    #[arg(long, value_name = "FILE", requires = "alg")]
    private_key: Option<PathBuf>,

    /// The algorithm: HS256 with --secret, RS256 or ES256 with --private-key.
    #[arg(long, value_enum)]
    alg: Option<Alg>,

    /// The key id to put in the header (kid), to pick the key among several.
    #[arg(long, value_name = "KID")]
    kid: Option<String>,
}

/// The signing algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "UPPER")]
enum Alg {
    Hs256,
    Rs256,
    Es256,
}

fn parse_grant(text: &str) -> Result<(String, Vec<String>), String> {
    let (pattern, permissions) = text
        .split_once('=')
        .ok_or_else(|| String::from("write PATTERN=PERMISSIONS, such as news=sub"))?;
    Pattern::parse(pattern)?;
    let permissions: Vec<String> = permissions
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    if let Some(bad) = permissions
        .iter()
        .find(|p| !matches!(p.as_str(), "sub" | "pub" | "presence"))
    {
        return Err(format!(
            "unknown permission {bad:?} (the permissions are sub, pub and presence)"
        ));
    }
    Ok((pattern.to_owned(), permissions))
}

fn parse_ttl(text: &str) -> Result<Duration, String> {
    let ttl = humantime::parse_duration(text)
        .map_err(|err| format!("{err} (write a duration such as 1h or 10m)"))?;
    if ttl.is_zero() {
        return Err(String::from("must be more than 0s"));
    }
    Ok(ttl)
}

/// Why no token could be printed.
#[derive(Debug, thiserror::Error)]
enum MintError {
    #[error("give --secret (or PUSHWIRE_TOKEN_SECRET) or --private-key")]
    NoKey,
    #[error("--alg {0:?} does not go with {1}")]
    Mismatch(&'static str, &'static str),
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Sign(#[from] auth::SignError),
}

fn mint(args: TokenArgs) -> Result<String, MintError> {
    let key = match (&args.secret, &args.private_key, args.alg) {
        (Some(secret), None, None | Some(Alg::Hs256)) if !secret.is_empty() => {
            SigningKey::Secret(secret.clone())
        }
        (Some(_), None, Some(_)) => return Err(MintError::Mismatch("RS256/ES256", "--secret")),
        (_, Some(path), alg) => {
            let pem = std::fs::read(path).map_err(|source| MintError::Read {
                path: path.clone(),
                source,
            })?;
            match alg {
                Some(Alg::Rs256) => SigningKey::Rsa(pem),
                Some(Alg::Es256) => SigningKey::Ec(pem),
                _ => return Err(MintError::Mismatch("HS256", "--private-key")),
            }
        }
        _ => return Err(MintError::NoKey),
    };
    let now = auth::now();
    let claims = Claims {
        sub: Some(args.sub),
        exp: now.saturating_add(args.ttl.as_secs().max(1)),
        iat: Some(now),
        aud: args.aud,
        iss: args.iss,
        topics: (args.subscription.is_none() && !args.topics.is_empty())
            .then(|| args.topics.into_iter().collect::<BTreeMap<_, _>>()),
        topic: args.subscription,
        nbf: None,
    };
    Ok(auth::sign(&claims, &key, args.kid.as_deref())?)
}

/// Prints the token; an error is one line on standard error.
pub(crate) fn run(args: TokenArgs) -> ExitCode {
    match mint(args) {
        Ok(token) => {
            let _ =
                std::io::Write::write_all(&mut std::io::stdout(), format!("{token}\n").as_bytes());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("pushwire: error: {err}");
            ExitCode::FAILURE
        }
    }
}
