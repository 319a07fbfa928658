//! Renders `bench/run`'s results (`target/bench/results.jsonl`, one JSON object per
//! `pushwire bench --json` run) into the side-by-side section of
//! `docs/benchmarks.md` (between `<!-- bench/run:begin -->` and
//! `<!-- bench/run:end -->`) and a chart of fan-out latency against subscribers.
//!
//!     pushwire-bench-report --results FILE --commands FILE --doc FILE --svg FILE

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;

use plotters::prelude::*;
use serde_json::Value;

const BEGIN: &str = "<!-- bench/run:begin -->";
const END: &str = "<!-- bench/run:end -->";
const ORDER: [&str; 11] = [
    "pushwire",
    "tornado",
    "node-ws",
    "axum",
    "pusher: pushwire /ws",
    "pusher: pushwire /app",
    "pusher: soketi /app",
    "mercure: pushwire /sse",
    "mercure: pushwire /.well-known/mercure",
    "mercure: pushwire /sse idle",
    "mercure: pushwire /.well-known/mercure idle",
];

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bench report: {err}");
            ExitCode::FAILURE
        }
    }
}

struct Args {
    /// The commit measured (default: the current one).
    commit: Option<String>,
    results: String,
    commands: String,
    doc: String,
    svg: String,
}

fn args() -> Result<Args, String> {
    let mut map = BTreeMap::new();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        map.insert(flag, value);
    }
    let commit = map.remove("--commit");
    let mut take = |k: &str| map.remove(k).ok_or_else(|| format!("missing {k}"));
    Ok(Args {
        commit,
        results: take("--results")?,
        commands: take("--commands")?,
        doc: take("--doc")?,
        svg: take("--svg")?,
    })
}

fn run() -> Result<(), String> {
    let args = args()?;
    let text =
        std::fs::read_to_string(&args.results).map_err(|e| format!("{}: {e}", args.results))?;
    let runs: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| format!("bad result line: {e}")))
        .collect::<Result<_, _>>()?;
    let commands = std::fs::read_to_string(&args.commands).unwrap_or_default();
    let section = render(&runs, &commands, args.commit.as_deref())?;
    chart(&runs, &args.svg)?;
    let doc = std::fs::read_to_string(&args.doc).map_err(|e| format!("{}: {e}", args.doc))?;
    let new_doc = match (doc.find(BEGIN), doc.find(END)) {
        (Some(b), Some(e)) if b < e => format!("{}{BEGIN}\n{section}{}", &doc[..b], &doc[e..]),
        _ => format!("{}\n{BEGIN}\n{section}{END}\n", doc.trim_end()),
    };
    std::fs::write(&args.doc, new_doc).map_err(|e| format!("{}: {e}", args.doc))?;
    Ok(())
}

fn label(run: &Value) -> &str {
    run["label"].as_str().unwrap_or("?")
}

/// Why a run failed, as `bench/run` recorded it.
fn why(run: &Value) -> &str {
    run["error"]
        .as_str()
        .unwrap_or("see target/bench/logs/bench.log")
}

fn scenario(run: &Value) -> &str {
    run["scenario"].as_str().unwrap_or("?")
}

fn row(run: &Value, i: usize) -> &Value {
    &run["results"][i]
}

fn num(v: &Value) -> Option<f64> {
    v.as_f64()
}

fn fmt_num(v: Option<f64>) -> String {
    match v {
        None => "–".into(),
        Some(x) if x >= 100.0 || (x >= 0.0 && x.fract() == 0.0) => group(x.round() as u64),
        Some(x) => format!("{x:.1}"),
    }
}

fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn ms(v: &Value, key: &str) -> String {
    v[key]
        .as_f64()
        .map_or_else(|| "–".into(), |x| format!("{x:.2}"))
}

fn ratio(value: Option<f64>, base: Option<f64>) -> String {
    match (value, base) {
        (Some(v), Some(b)) if b > 0.0 => format!("{:.2}×", v / b),
        _ => "–".into(),
    }
}

fn servers<'a>(runs: &'a [Value], pred: impl Fn(&Value) -> bool) -> Vec<&'a Value> {
    let mut found: Vec<&Value> = runs.iter().filter(|r| pred(r)).collect();
    found.sort_by_key(|r| {
        ORDER
            .iter()
            .position(|o| *o == label(r))
            .unwrap_or(ORDER.len())
    });
    found
}

/// Runs of one server (and, for the sweep, one subscriber count), in server order
/// and then by subscribers: `bench/run --runs N` repeats the close contests.
fn grouped<'a>(runs: &'a [Value], pred: impl Fn(&Value) -> bool) -> Vec<Vec<&'a Value>> {
    let mut groups: Vec<Vec<&Value>> = Vec::new();
    for r in servers(runs, pred) {
        let same = |g: &Vec<&Value>| {
            label(g[0]) == label(r) && g[0]["params"]["subscribers"] == r["params"]["subscribers"]
        };
        match groups.iter_mut().find(|g| same(g)) {
            Some(group) => group.push(r),
            None => groups.push(vec![r]),
        }
    }
    groups.sort_by(|a, b| {
        let rank = |g: &Vec<&Value>| {
            ORDER
                .iter()
                .position(|o| *o == label(g[0]))
                .unwrap_or(ORDER.len())
        };
        let subs = |g: &Vec<&Value>| g[0]["params"]["subscribers"].as_u64().unwrap_or(0);
        (rank(a), subs(a)).cmp(&(rank(b), subs(b)))
    });
    groups
}

/// The median of some numbers (the mean of the middle two for an even count).
fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    })
}

/// The runs' values of `field`, those that have it.
fn values(group: &[&Value], field: impl Fn(&Value) -> Option<f64>) -> Vec<f64> {
    group.iter().filter_map(|r| field(r)).collect()
}

/// The runs of a group that did not fail.
fn succeeded<'a>(group: &[&'a Value]) -> Vec<&'a Value> {
    group
        .iter()
        .copied()
        .filter(|r| r["failed"] != true)
        .collect()
}

/// The sum of `key` in the first result row of each run.
fn sum_of(runs: &[&Value], key: &str) -> u64 {
    runs.iter().filter_map(|r| row(r, 0)[key].as_u64()).sum()
}

/// A median in milliseconds, with the range when there were several runs:
/// `2.60 (2.10–7.40)`.
fn ms_spread(values: Vec<f64>) -> String {
    let Some(mid) = median(values.clone()) else {
        return "–".into();
    };
    if values.len() < 2 {
        return format!("{mid:.2}");
    }
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{mid:.2} ({lo:.2}–{hi:.2})")
}

/// Like [`ms_spread`], for counts: the median and the range, as whole numbers.
fn num_spread(values: Vec<f64>) -> String {
    let Some(mid) = median(values.clone()) else {
        return "–".into();
    };
    if values.len() < 2 {
        return fmt_num(Some(mid));
    }
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!(
        "{} ({}–{})",
        fmt_num(Some(mid)),
        fmt_num(Some(lo)),
        fmt_num(Some(hi))
    )
}

/// "3" runs, or "3 (1 failed: why)".
fn runs_cell(group: &[&Value]) -> String {
    let failed: Vec<&&Value> = group.iter().filter(|r| r["failed"] == true).collect();
    match failed.first() {
        None => group.len().to_string(),
        Some(first) => format!("{} ({} failed: {})", group.len(), failed.len(), why(first)),
    }
}

/// A fan-out run at one rate (a point of the latency sweep); saturation runs list
/// several rates.
/// A run of the `pusher` scenario (issue 18): its label starts with "pusher: ".
fn is_pusher(r: &Value) -> bool {
    label(r).starts_with("pusher: ")
}

fn is_sweep(r: &Value) -> bool {
    matches!(scenario(r), "fanout" | "fanout-raw")
        && !is_pusher(r)
        && r["params"]["rates"]
            .as_array()
            .is_some_and(|a| a.len() == 1)
}

fn is_saturation(r: &Value) -> bool {
    matches!(scenario(r), "fanout" | "fanout-raw") && !is_sweep(r)
}

/// The last step that kept up: the sustained rate.
fn sustained(r: &Value) -> Option<&Value> {
    r["results"]
        .as_array()?
        .iter()
        .filter(|s| s["kept_up"] == true)
        .last()
}

/// Server processor time per delivery, in microseconds, at a step.
fn cpu_us_per_delivery(step: &Value) -> Option<f64> {
    let cpu = num(&step["server_cpu_pct"])?;
    let per_s = num(&step["deliveries_per_s"])?;
    (per_s > 0.0).then(|| cpu / 100.0 * 1e6 / per_s)
}

/// The `pusher` scenario: the same fan-out over pushwire's `/ws`, over pushwire's
/// Pusher endpoint, and over soketi, in rounds.
fn pusher_section(out: &mut String, runs: &[Value]) {
    let _ = writeln!(out, "### Fan-out over the Pusher protocol (issue 18)\n");
    let _ = writeln!(out, "{PUSHER_INTRO}\n");
    protocol_table(out, runs, "pusher: ", "pushwire /ws");
}

/// A run of the `mercure` scenario (issue 19): its label starts with "mercure: ".
fn is_mercure(r: &Value) -> bool {
    label(r).starts_with("mercure: ")
}

/// The `mercure` scenario: the same fan-out over pushwire's `/sse` and over its
/// Mercure hub, in rounds, and the memory of idle subscribers of both.
fn mercure_section(out: &mut String, runs: &[Value]) {
    let fanout = |r: &Value| is_mercure(r) && scenario(r) != "idle";
    if !runs.iter().any(is_mercure) {
        return;
    }
    let _ = writeln!(out, "### Mercure: fan-out and idle subscribers (issue 19)\n");
    if runs.iter().any(fanout) {
        let _ = writeln!(out, "{MERCURE_INTRO}\n");
        let picked: Vec<Value> = runs.iter().filter(|r| fanout(r)).cloned().collect();
        protocol_table(out, &picked, "mercure: ", "pushwire /sse");
    }
    let idle = servers(runs, |r| is_mercure(r) && scenario(r) == "idle");
    if idle.is_empty() {
        return;
    }
    let w = |out: &mut String, s: String| {
        let _ = writeln!(out, "{s}");
    };
    w(out, "Memory per idle subscriber: the server's resident memory (`VmRSS`) before and after opening the streams, a fresh server for each, divided by the streams.\n".into());
    w(
        out,
        "| endpoint | streams | RSS before KiB | RSS after KiB | bytes per subscriber | ratio to /sse |"
            .into(),
    );
    w(out, "|---|---|---|---|---|---|".into());
    let base = idle
        .iter()
        .find(|r| label(r) == "mercure: pushwire /sse idle")
        .and_then(|r| num(&row(r, 0)["bytes_per_conn"]));
    for r in idle {
        let name = label(r)
            .trim_start_matches("mercure: pushwire ")
            .trim_end_matches(" idle");
        if r["failed"] == true {
            w(out, format!("| {name} | failed: {} | | | | |", why(r)));
            continue;
        }
        let x = row(r, 0);
        let b = num(&x["bytes_per_conn"]);
        w(
            out,
            format!(
                "| {name} | {} | {} | {} | {} | {} |",
                fmt_num(num(&x["connections"])),
                fmt_num(num(&x["rss_before_kib"])),
                fmt_num(num(&x["rss_after_kib"])),
                fmt_num(b),
                ratio(b, base)
            ),
        );
    }
    w(out, String::new());
}

const PUSHER_INTRO: &str = "The same fan-out three ways, in rounds that take each in turn: pushwire's topic protocol (`/ws`), pushwire's Pusher endpoint (subscribers speak the Pusher client protocol 7 at `/app/KEY`; each message is an event triggered through the Pusher HTTP API, signed, on one connection with one request in flight, several queued events going as one `batch_events`), and soketi with the same subscribers and publisher. The publish rate is raised step by step, as in the saturation table; a step keeps up when every subscriber got every message and p99 stayed under 1 s. With several runs: the median, and the range in brackets. µs per delivery: the server's processor time divided by the deliveries, at the sustained step.";

const MERCURE_INTRO: &str = "The same fan-out two ways on the same server (`--mercure --mercure-anonymous --mercure-issuer bench=hs256:…`), in rounds that take each in turn: pushwire's own Server-Sent Events (`GET /sse?topic=bench`, each message published through the publish API, `POST /api/publish/bench`) and its Mercure hub (`GET /.well-known/mercure?match=https://example.com/bench`, anonymous subscribers; each message an update POSTed as a form, `topic` and `data`, with an HS256 `at+jwt` token of a trusted issuer). The generator reads every stream with its own small HTTP/1.1 event-stream reader, one task per subscriber, and publishes one request at a time on one keep-alive connection. The publish rate is raised step by step; a step keeps up when every subscriber got every message and p99 stayed under 1 s. With several runs: the median, and the range in brackets. µs per delivery: the server's processor time divided by the deliveries, at the sustained step.";

/// The table of a scenario that measures one fan-out several ways (runs labelled
/// `{prefix}NAME`), with the ratio to the way `base`, and its step-by-step table.
fn protocol_table(out: &mut String, runs: &[Value], prefix: &str, base: &str) {
    let groups = grouped(runs, |r| label(r).starts_with(prefix));
    if groups.is_empty() {
        return;
    }
    let w = |out: &mut String, s: String| {
        let _ = writeln!(out, "{s}");
    };
    let base_label = format!("{prefix}{base}");
    w(out, format!("| server | subscribers | runs | p50 / p99 ms at the first step | sustained msg/s | deliveries/s | ratio to {base} | server µs per delivery | server CPU % | bench CPU % | first step behind |"));
    w(out, "|---|---|---|---|---|---|---|---|---|---|---|".into());
    let base = groups
        .iter()
        .find(|g| label(g[0]) == base_label)
        .and_then(|g| {
            median(values(&succeeded(g), |r| {
                sustained(r).and_then(|s| num(&s["deliveries_per_s"]))
            }))
        });
    for group in &groups {
        let ok = succeeded(group);
        let first = |key: &'static str| values(&ok, move |r| num(&row(r, 0)["latency_ms"][key]));
        let at_best =
            |field: fn(&Value) -> Option<f64>| values(&ok, move |r| sustained(r).and_then(field));
        let delivered = median(at_best(|s| num(&s["deliveries_per_s"])));
        let behind: Vec<String> = ok
            .iter()
            .filter_map(|r| {
                let b = r["results"]
                    .as_array()?
                    .iter()
                    .find(|s| s["kept_up"] == false)?;
                Some(format!(
                    "{} msg/s: {} / {}",
                    b["rate"],
                    fmt_num(num(&b["delivered"])),
                    fmt_num(num(&b["expected"]))
                ))
            })
            .collect();
        w(
            out,
            format!(
                "| {} | {} | {} | {} / {} | {} | {} | {} | {} | {} | {} | {} |",
                label(group[0]).trim_start_matches(prefix),
                fmt_num(num(&group[0]["params"]["subscribers"])),
                runs_cell(group),
                ms_spread(first("p50")),
                ms_spread(first("p99")),
                num_spread(at_best(|s| num(&s["rate"]))),
                fmt_num(delivered),
                ratio(delivered, base),
                ms_spread(at_best(cpu_us_per_delivery)),
                fmt_num(median(at_best(|s| num(&s["server_cpu_pct"])))),
                fmt_num(median(at_best(|s| num(&s["bench_cpu_pct"])))),
                if ok.is_empty() {
                    "–".to_owned()
                } else if behind.is_empty() {
                    "none (all steps kept up)".to_owned()
                } else {
                    behind.join("; ")
                },
            ),
        );
    }
    w(out, String::new());
    w(out, "Step by step (every run):\n".into());
    w(out, "| server | run | msg/s | delivered / expected | p50 ms | p99 ms | server CPU % | bench CPU % | server µs per delivery | kept up |".into());
    w(out, "|---|---|---|---|---|---|---|---|---|---|".into());
    for group in &groups {
        for (n, r) in group.iter().enumerate() {
            if r["failed"] == true {
                w(
                    out,
                    format!(
                        "| {} | {} | failed: {} | | | | | | | |",
                        label(r).trim_start_matches(prefix),
                        n + 1,
                        why(r)
                    ),
                );
                continue;
            }
            for step in r["results"].as_array().into_iter().flatten() {
                w(
                    out,
                    format!(
                        "| {} | {} | {} | {} / {} | {} | {} | {} | {} | {} | {} |",
                        label(r).trim_start_matches(prefix),
                        n + 1,
                        step["rate"],
                        fmt_num(num(&step["delivered"])),
                        fmt_num(num(&step["expected"])),
                        ms(&step["latency_ms"], "p50"),
                        ms(&step["latency_ms"], "p99"),
                        fmt_num(num(&step["server_cpu_pct"])),
                        fmt_num(num(&step["bench_cpu_pct"])),
                        cpu_us_per_delivery(step).map_or_else(|| "–".into(), |v| format!("{v:.3}")),
                        if step["kept_up"] == true { "yes" } else { "no" },
                    ),
                );
            }
        }
    }
    w(out, String::new());
}

fn render(runs: &[Value], commands: &str, commit: Option<&str>) -> Result<String, String> {
    let mut out = String::new();
    let w = |out: &mut String, s: String| {
        let _ = writeln!(out, "{s}");
    };
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let commit = commit.map(str::to_owned).unwrap_or_else(|| {
        std::process::Command::new("git")
            .args(["rev-parse", "--short", "HEAD"])
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    });
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    w(&mut out, "## Side by side: pushwire and the peers\n".into());
    w(
        &mut out,
        format!(
            "Written by `bench/run` on {date}, commit `{commit}`, on this machine: {cpus} cores \
         shared by the server and the load generator (`pushwire bench`, whose own processor \
         use is reported next to the server's: 100% = one core). Peers: `bench/peers/` \
         (Tornado, Node `ws`, plain axum; soketi in the Pusher table). Every run starts a \
         fresh server process. \
         pushwire is measured on its topic protocol (`/ws`, JSON pushes with offsets), the \
         peers on their `/broadcast` endpoint (`--raw`: plain text). Rows named \
         \"pushwire, N nodes\" are clusters (`bench/cluster`): N pushwire processes on one \
         Redis, on this same machine; with 3 nodes the publisher is on one node and the \
         subscribers on the other two, so every message crosses Redis."
        ),
    );
    w(&mut out, String::new());

    // Counter.
    w(
        &mut out,
        "### Counter: every connection its own 1 Hz counter\n".into(),
    );
    w(&mut out, "With several runs: the median, and the range in brackets; gaps and dropped are summed over the runs.\n".into());
    w(&mut out, "| server | connections | runs | messages/s | gaps | dropped | jitter p50 ms | jitter p99 ms | server CPU % | bench CPU % |".into());
    w(&mut out, "|---|---|---|---|---|---|---|---|---|---|".into());
    for group in grouped(runs, |r| scenario(r) == "counter") {
        let ok = succeeded(&group);
        let sum = |key: &str| sum_of(&ok, key);
        let mid = |key: &str| median(values(&ok, |r| num(&row(r, 0)[key])));
        w(
            &mut out,
            format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                label(group[0]),
                fmt_num(ok.first().and_then(|r| num(&r["params"]["connections"]))),
                runs_cell(&group),
                fmt_num(mid("msgs_per_s")),
                sum("gaps"),
                sum("dropped"),
                ms_spread(values(&ok, |r| num(&row(r, 0)["jitter_ms"]["p50"]))),
                ms_spread(values(&ok, |r| num(&row(r, 0)["jitter_ms"]["p99"]))),
                fmt_num(mid("server_cpu_pct")),
                fmt_num(mid("bench_cpu_pct"))
            ),
        );
    }
    w(&mut out, String::new());

    // Fan-out latency at the largest sweep point.
    w(
        &mut out,
        "### Fan-out latency: 10 messages/s of 64 B\n".into(),
    );
    w(&mut out, "With several runs: the median, and the range in brackets; deliveries are summed over the runs.\n".into());
    w(&mut out, "| server | subscribers | runs | delivered / expected | p50 ms | p99 ms | p99.9 ms | max ms | server CPU % | bench CPU % |".into());
    w(&mut out, "|---|---|---|---|---|---|---|---|---|---|".into());
    for group in grouped(runs, is_sweep) {
        let ok = succeeded(&group);
        let sum = |key: &str| sum_of(&ok, key);
        let mid = |key: &str| median(values(&ok, |r| num(&row(r, 0)[key])));
        let latency = |q: &str| ms_spread(values(&ok, |r| num(&row(r, 0)["latency_ms"][q])));
        w(
            &mut out,
            format!(
                "| {} | {} | {} | {} / {} | {} | {} | {} | {} | {} | {} |",
                label(group[0]),
                fmt_num(num(&group[0]["params"]["subscribers"])),
                runs_cell(&group),
                fmt_num(Some(sum("delivered") as f64)),
                fmt_num(Some(sum("expected") as f64)),
                latency("p50"),
                latency("p99"),
                latency("p999"),
                latency("max"),
                fmt_num(mid("server_cpu_pct")),
                fmt_num(mid("bench_cpu_pct"))
            ),
        );
    }
    w(&mut out, "\nThe chart: p99 latency against subscribers (the median where there were several runs), same rate and size (`docs/fanout-latency.svg`).\n".into());
    w(
        &mut out,
        "![fan-out p99 latency against subscribers](fanout-latency.svg)\n".into(),
    );

    // Saturation.
    w(
        &mut out,
        "### Fan-out saturation: the publish rate raised step by step\n".into(),
    );
    w(&mut out, "A step keeps up when every subscriber got every message and p99 stayed under 1 s. Sustained = the last step that kept up.\n".into());
    w(&mut out, "| server | subscribers | sustained msg/s | deliveries/s | ratio to pushwire | p99 ms there | first step behind | server CPU % | bench CPU % |".into());
    w(&mut out, "|---|---|---|---|---|---|---|---|---|".into());
    let sat = servers(runs, is_saturation);
    let base = sat
        .iter()
        .find(|r| label(r) == "pushwire")
        .and_then(|r| sustained(r))
        .and_then(|s| num(&s["deliveries_per_s"]));
    for r in &sat {
        if r["failed"] == true {
            w(
                &mut out,
                format!("| {} | failed: {} | | | | | | | |", label(r), why(r)),
            );
            continue;
        }
        let best = sustained(r);
        let behind = r["results"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["kept_up"] == false));
        let behind_text = behind.map_or_else(
            || "none (all steps kept up)".into(),
            |b| {
                format!(
                    "{} msg/s: {} / {}",
                    b["rate"],
                    fmt_num(num(&b["delivered"])),
                    fmt_num(num(&b["expected"]))
                )
            },
        );
        let d = best.and_then(|s| num(&s["deliveries_per_s"]));
        w(
            &mut out,
            format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                label(r),
                fmt_num(num(&r["params"]["subscribers"])),
                best.map_or_else(|| "none".into(), |s| s["rate"].to_string()),
                fmt_num(d),
                ratio(d, base),
                best.map_or_else(|| "–".into(), |s| ms(&s["latency_ms"], "p99")),
                behind_text,
                best.map_or_else(|| "–".into(), |s| fmt_num(num(&s["server_cpu_pct"]))),
                best.map_or_else(|| "–".into(), |s| fmt_num(num(&s["bench_cpu_pct"]))),
            ),
        );
    }
    w(&mut out, String::new());

    pusher_section(&mut out, runs);
    mercure_section(&mut out, runs);

    // Idle.
    w(
        &mut out,
        "### Memory per idle WebSocket (permessage-deflate offered)\n".into(),
    );
    w(
        &mut out,
        "| server | connections | deflate negotiated | bytes per connection | ratio to pushwire |"
            .into(),
    );
    w(&mut out, "|---|---|---|---|---|".into());
    let idle = servers(runs, |r| scenario(r) == "idle" && !is_mercure(r));
    let base = idle
        .iter()
        .find(|r| label(r) == "pushwire")
        .and_then(|r| num(&row(r, 0)["bytes_per_conn"]));
    for r in idle {
        if r["failed"] == true {
            w(
                &mut out,
                format!("| {} | failed: {} | | | |", label(r), why(r)),
            );
            continue;
        }
        let x = row(r, 0);
        let b = num(&x["bytes_per_conn"]);
        w(
            &mut out,
            format!(
                "| {} | {} | {} | {} | {} |",
                label(r),
                fmt_num(num(&x["connections"])),
                fmt_num(num(&x["deflate_negotiated"])),
                fmt_num(b),
                ratio(b, base)
            ),
        );
    }
    w(&mut out, String::new());

    // Echo.
    if let Some(r) = runs.iter().find(|r| scenario(r) == "echo") {
        let x = row(r, 0);
        w(
            &mut out,
            "### Echo (pushwire's `examples/echo`; the peers have no echo endpoint)\n".into(),
        );
        w(
            &mut out,
            "| connections | round trips/s | p50 ms | p99 ms | server CPU % | bench CPU % |".into(),
        );
        w(&mut out, "|---|---|---|---|---|---|".into());
        w(
            &mut out,
            format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                fmt_num(num(&r["params"]["connections"])),
                fmt_num(num(&x["round_trips_per_s"])),
                ms(&x["latency_ms"], "p50"),
                ms(&x["latency_ms"], "p99"),
                fmt_num(num(&x["server_cpu_pct"])),
                fmt_num(num(&x["bench_cpu_pct"]))
            ),
        );
    }

    w(&mut out, "### The commands\n".into());
    w(&mut out, "`bench/run` ran these (`PORT` and `PID`: the fresh server's), after `cargo build --release --bins --examples`:\n".into());
    w(&mut out, "```sh".into());
    out.push_str(commands);
    w(&mut out, "```".into());
    Ok(out)
}

fn chart(runs: &[Value], path: &str) -> Result<(), String> {
    let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    // Single servers only: the cluster runs (labelled "…, N nodes") have their own
    // rows in the tables.
    for group in grouped(runs, |r| is_sweep(r) && !label(r).ends_with(" nodes")) {
        let p99 = median(values(&group, |r| num(&row(r, 0)["latency_ms"]["p99"])));
        let (Some(subs), Some(p99)) = (num(&group[0]["params"]["subscribers"]), p99) else {
            continue;
        };
        series
            .entry(label(group[0]).to_owned())
            .or_default()
            .push((subs, p99));
    }
    let max_x = series.values().flatten().map(|p| p.0).fold(1.0, f64::max);
    // Log scale: the slowest server's latency is two orders above the others'.
    let max_y = series.values().flatten().map(|p| p.1).fold(10.0, f64::max) * 1.5;
    let min_y = series
        .values()
        .flatten()
        .map(|p| p.1)
        .fold(max_y, f64::min)
        .max(0.1)
        / 1.5;
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "fan-out p99 latency (ms) against subscribers, 10 msg/s of 64 B",
            ("sans-serif", 18),
        )
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..max_x * 1.05, (min_y..max_y).log_scale())
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("subscribers")
        .y_desc("p99 ms (log scale)")
        .draw()
        .map_err(|e| e.to_string())?;
    let colors = [RED, BLUE, GREEN, MAGENTA, BLACK];
    for (i, (name, mut points)) in series.into_iter().enumerate() {
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let color = colors[i % colors.len()];
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        chart
            .draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, 3, color.filled())),
            )
            .map_err(|e| e.to_string())?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}
