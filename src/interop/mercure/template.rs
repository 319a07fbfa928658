//! RFC 6570 URI Templates as 0.x Mercure topic selectors: a template matches a
//! topic when some values of its variables expand to that topic.
//!
//! A template is compiled to one regular expression (the `regex` crate: linear
//! time in the topic's length). Each expression `{op var,…}` becomes what its
//! expansion can produce: for each operator (levels 1–4: none, `+`, `#`, `.`,
//! `/`, `;`, `?`, `&`) its first and separator strings, and values of the
//! characters that operator leaves unencoded (unreserved characters and
//! percent-encoded octets; for `+` and `#` the reserved characters too; IRI
//! characters beyond ASCII always, since Mercure topics are IRIs). Prefix
//! modifiers (`:3`) bound a value's length; explode modifiers (`*`) allow
//! lists and `key=value` pairs. The variables of an expression come in the
//! template's order, each at most once, any of them left out (undefined).

use regex::{Regex, RegexBuilder};

/// The most variables one expression may have.
const MAX_VARIABLES: usize = 16;

/// The most bytes a compiled template's program may take.
const SIZE_LIMIT: usize = 1 << 20;

/// An unreserved character, a percent-encoded octet or a non-ASCII IRI character.
const UNRESERVED: &str = r"(?:[A-Za-z0-9\-._~]|%[0-9A-Fa-f]{2}|[^\x00-\x7F])";

/// [`UNRESERVED`] or a reserved character (`+` and `#` expansions).
const RESERVED: &str = r"(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2}|[^\x00-\x7F])";

/// A compiled URI Template.
pub(super) struct Template {
    regex: Regex,
}

/// How an operator expands (RFC 6570 appendix A).
struct Operator {
    /// What the expansion starts with when a variable is defined.
    first: &'static str,
    /// What separates the variables' values.
    separator: &'static str,
    /// Whether values come as `name=value`.
    named: bool,
    /// Whether a named empty value is written `name` alone (`;`) rather than
    /// `name=` (`?`, `&`).
    bare_when_empty: bool,
    /// Whether reserved characters stay unencoded.
    reserved: bool,
}

impl Operator {
    fn of(c: Option<char>) -> Result<Self, String> {
        let (first, separator, named, bare_when_empty, reserved) = match c {
            None => ("", ",", false, false, false),
            Some('+') => ("", ",", false, false, true),
            Some('#') => ("#", ",", false, false, true),
            Some('.') => (".", ".", false, false, false),
            Some('/') => ("/", "/", false, false, false),
            Some(';') => (";", ";", true, true, false),
            Some('?') => ("?", "&", true, false, false),
            Some('&') => ("&", "&", true, false, false),
            Some(other) => return Err(format!("operator {other:?} is reserved by RFC 6570")),
        };
        Ok(Self {
            first,
            separator,
            named,
            bare_when_empty,
            reserved,
        })
    }
}

/// One `varname[:prefix|*]`.
struct VarSpec<'a> {
    name: &'a str,
    prefix: Option<u16>,
    explode: bool,
}

impl<'a> VarSpec<'a> {
    fn parse(text: &'a str) -> Result<Self, String> {
        let (name, prefix, explode) = if let Some(name) = text.strip_suffix('*') {
            (name, None, true)
        } else if let Some((name, digits)) = text.split_once(':') {
            let prefix = digits
                .parse::<u16>()
                .ok()
                .filter(|n| (1..=9999).contains(n) && !digits.starts_with('0'))
                .ok_or_else(|| format!("{text:?}: a prefix is 1 to 9999"))?;
            (name, Some(prefix), false)
        } else {
            (text, None, false)
        };
        if !is_varname(name) {
            return Err(format!("{name:?} is not a variable name"));
        }
        Ok(Self {
            name,
            prefix,
            explode,
        })
    }
}

/// `varchar *( ["."] varchar )`, varchar = ALPHA / DIGIT / "_" / pct-encoded.
fn is_varname(name: &str) -> bool {
    let bytes = name.as_bytes();
    let mut i = 0;
    let mut after_dot = true;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = |j: usize| bytes.get(j).is_some_and(u8::is_ascii_hexdigit);
                if !(hex(i + 1) && hex(i + 2)) {
                    return false;
                }
                i += 3;
                after_dot = false;
                continue;
            }
            b'.' if !after_dot => after_dot = true,
            b if b.is_ascii_alphanumeric() || b == b'_' => after_dot = false,
            _ => return false,
        }
        i += 1;
    }
    !after_dot
}

impl Template {
    /// Compiles `text`; the error says what is wrong with it.
    pub(super) fn compile(text: &str) -> Result<Self, String> {
        let mut pattern = String::from(r"\A");
        let mut rest = text;
        while let Some(open) = rest.find(['{', '}']) {
            let (literal, tail) = rest.split_at(open);
            pattern.push_str(&regex::escape(literal));
            if tail.starts_with('}') {
                return Err(String::from("a '}' closes no expression"));
            }
            let body = &tail[1..];
            let close = body
                .find('}')
                .ok_or_else(|| String::from("an expression '{' is not closed"))?;
            let expression = &body[..close];
            if expression.contains('{') {
                return Err(String::from("expressions cannot nest"));
            }
            pattern.push_str(&expression_regex(expression)?);
            rest = &body[close + 1..];
        }
        pattern.push_str(&regex::escape(rest));
        pattern.push_str(r"\z");
        let regex = RegexBuilder::new(&pattern)
            .size_limit(SIZE_LIMIT)
            .build()
            .map_err(|e| format!("the template is too complex: {e}"))?;
        Ok(Self { regex })
    }

    /// Whether `topic` is an expansion of the template.
    pub(super) fn matches(&self, topic: &str) -> bool {
        self.regex.is_match(topic)
    }
}

/// What one expression (the text between braces) can expand to.
fn expression_regex(expression: &str) -> Result<String, String> {
    let first = expression.chars().next();
    let (operator, list) = match first {
        Some(c) if c.is_ascii_alphanumeric() || c == '_' || c == '%' => {
            (Operator::of(None)?, expression)
        }
        Some(c) => (Operator::of(Some(c))?, &expression[c.len_utf8()..]),
        None => return Err(String::from("an expression '{}' is empty")),
    };
    let class = if operator.reserved {
        RESERVED
    } else {
        UNRESERVED
    };
    let specs = list
        .split(',')
        .map(VarSpec::parse)
        .collect::<Result<Vec<_>, _>>()?;
    if specs.len() > MAX_VARIABLES {
        return Err(format!(
            "an expression has at most {MAX_VARIABLES} variables"
        ));
    }
    let pieces: Vec<String> = specs
        .iter()
        .map(|spec| piece(&operator, class, spec))
        .collect();
    // The defined variables, in order, each at most once: the first one after
    // the operator's first string, the others after its separator.
    let separator = regex::escape(operator.separator);
    let choices: Vec<String> = (0..pieces.len())
        .map(|first| {
            let mut choice = pieces[first].clone();
            for later in &pieces[first + 1..] {
                choice.push_str(&format!("(?:{separator}{later})?"));
            }
            choice
        })
        .collect();
    Ok(format!(
        "(?:{}(?:{}))?",
        regex::escape(operator.first),
        choices.join("|")
    ))
}

/// What one variable of an expression can expand to.
fn piece(operator: &Operator, class: &str, spec: &VarSpec<'_>) -> String {
    let separator = regex::escape(operator.separator);
    if spec.explode {
        // Each member of a list, or `key=value` of an associative array, with
        // the operator's separator between them (named operators name each).
        let item = if operator.named {
            format!("{class}+(?:={class}*)?")
        } else {
            format!("{class}*(?:={class}*)?")
        };
        return format!("{item}(?:{separator}{item})*");
    }
    let value = match spec.prefix {
        Some(n) => format!("{class}{{0,{n}}}"),
        // A string, or a list or an associative array joined by commas.
        None => format!("{class}*(?:,{class}*)*"),
    };
    if !operator.named {
        return value;
    }
    let name = regex::escape(spec.name);
    if operator.bare_when_empty {
        format!("{name}(?:={value})?")
    } else {
        format!("{name}={value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(text: &str) -> Template {
        Template::compile(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn simple_expressions_take_unreserved_characters() {
        let t = template("https://example.com/books/{id}");
        assert!(t.matches("https://example.com/books/1"));
        assert!(t.matches("https://example.com/books/war%20and%20peace"));
        assert!(t.matches("https://example.com/books/été"));
        assert!(!t.matches("https://example.com/books/1/reviews"));
        assert!(!t.matches("https://example.com/books/a?b"));
        assert!(!t.matches("https://example.com/books/a b"));
        assert!(!t.matches("https://example.com/books/%zz"));
        // Literals are literal, regex metacharacters included.
        let dotted = template("https://example.com/a.b/{id}");
        assert!(!dotted.matches("https://example.com/aXb/1"));
        let two = template("https://example.com/{x,y}");
        assert!(two.matches("https://example.com/1,2"));
    }

    #[test]
    fn reserved_and_fragment_expansions_keep_reserved_characters() {
        let t = template("https://example.com/{+path}");
        assert!(t.matches("https://example.com/books/1/reviews?page=2"));
        let f = template("https://example.com/page{#section}");
        assert!(f.matches("https://example.com/page"));
        assert!(f.matches("https://example.com/page#intro/part:1"));
        assert!(!f.matches("https://example.com/pageintro"));
    }

    #[test]
    fn label_and_path_expansions_repeat_their_separator() {
        let path = template("https://example.com{/segments*}");
        assert!(path.matches("https://example.com/a/b/c"));
        assert!(path.matches("https://example.com"));
        let one = template("https://example.com{/id}/x");
        assert!(one.matches("https://example.com/1/x"));
        assert!(!one.matches("https://example.com/1/2/x"));
        let two = template("https://example.com{/a,b}/x");
        assert!(two.matches("https://example.com/1/2/x"));
        assert!(!two.matches("https://example.com/1/2/3/x"));
        let label = template("https://example.com/file{.ext}");
        assert!(label.matches("https://example.com/file.json"));
        assert!(!label.matches("https://example.com/file/json"));
    }

    #[test]
    fn query_expansions_name_their_variables() {
        let q = template("https://example.com/search{?q,page}");
        assert!(q.matches("https://example.com/search"));
        assert!(q.matches("https://example.com/search?q=cats"));
        assert!(q.matches("https://example.com/search?q=cats&page=2"));
        assert!(!q.matches("https://example.com/search?admin=1"));
        let more = template("https://example.com/search?fixed=1{&page}");
        assert!(more.matches("https://example.com/search?fixed=1&page=3"));
        let params = template("https://example.com/map{;x,y}");
        assert!(params.matches("https://example.com/map;x=1;y"));
        assert!(!params.matches("https://example.com/map;z=1"));
        assert!(!params.matches("https://example.com/map;y;x=1"));
        assert!(!params.matches("https://example.com/map;x=1;x=2"));
        let exploded = template("https://example.com/find{?filters*}");
        assert!(exploded.matches("https://example.com/find?a=1&b=2"));
    }

    #[test]
    fn prefixes_bound_a_value() {
        let t = template("https://example.com/{id:3}");
        assert!(t.matches("https://example.com/abc"));
        assert!(t.matches("https://example.com/%41bc"));
        assert!(!t.matches("https://example.com/abcd"));
    }

    #[test]
    fn malformed_templates_are_refused() {
        for bad in [
            "https://example.com/{id",
            "https://example.com/id}",
            "https://example.com/{}",
            "https://example.com/{a{b}}",
            "https://example.com/{=id}",
            "https://example.com/{|id}",
            "https://example.com/{id:0}",
            "https://example.com/{id:10000}",
            "https://example.com/{id:x}",
            "https://example.com/{a b}",
            "https://example.com/{a..b}",
            "https://example.com/{a.}",
            "https://example.com/{%zz}",
            "https://example.com/{a,}",
        ] {
            assert!(Template::compile(bad).is_err(), "{bad}");
        }
        assert!(Template::compile("https://example.com/{a.b,c_d,%41}").is_ok());
    }
}
