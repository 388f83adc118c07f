//! The soak's Markdown (a child of `soak.rs`): per server a table of
//! samples (all of them for short runs, else one a minute plus the first
//! and the last), then one summary table with the servers side by side.

use super::{Phase, Run, Sample, Scrape};
use crate::args::Args;
use std::time::Duration;

/// Short runs print every sample.
const ALL_ROWS_UP_TO: usize = 20;

fn mib(kib: Option<u64>) -> Option<f64> {
    kib.map(|k| k as f64 / 1024.0)
}

fn num(v: Option<f64>, digits: usize) -> String {
    v.map_or("—".into(), |v| format!("{v:.digits$}"))
}

fn scrape(s: &Sample) -> Scrape {
    s.scrape.clone().unwrap_or_default()
}

/// Server CPU over `a` → `b`, % of one core.
fn cpu_pct(a: &Sample, b: &Sample) -> Option<f64> {
    let secs = b.taken.duration_since(a.taken).as_secs_f64();
    let used = b.cpu?.checked_sub(a.cpu?)?.as_secs_f64();
    (secs > 0.0).then(|| 100.0 * used / secs)
}

/// Server acks per second over `a` → `b` (the operator's counter).
fn acks_per_sec(a: &Sample, b: &Sample) -> Option<f64> {
    let secs = b.taken.duration_since(a.taken).as_secs_f64();
    let acks = scrape(b).acks? - scrape(a).acks?;
    (secs > 0.0).then(|| acks / secs)
}

fn elapsed(s: &Sample) -> String {
    let t = s.at.as_secs_f64();
    let t = if t < 10.0 {
        format!("{t:.1} s")
    } else {
        format!("{t:.0} s")
    };
    match s.phase {
        Phase::Empty => "empty server".into(),
        Phase::Load => t,
        Phase::After => format!("clients gone ({t})"),
        Phase::Settled => format!("clients gone, settled ({t})"),
    }
}

/// The samples that get a row: the empty one, the load's (all, or the
/// first, the last and one a minute), and the one after.
fn shown(samples: &[Sample]) -> Vec<&Sample> {
    let load: Vec<&Sample> = samples.iter().filter(|s| s.phase == Phase::Load).collect();
    let mut out: Vec<&Sample> = samples.iter().filter(|s| s.phase == Phase::Empty).collect();
    let mut minute = None;
    for (i, s) in load.iter().enumerate() {
        let m = s.at.as_secs() / 60;
        if load.len() <= ALL_ROWS_UP_TO || i == 0 || i + 1 == load.len() || minute != Some(m) {
            out.push(s);
            minute = Some(m);
        }
    }
    out.extend(
        samples
            .iter()
            .filter(|s| matches!(s.phase, Phase::After | Phase::Settled)),
    );
    out
}

fn print_samples(n: usize, run: &Run) {
    println!("#### soak, {}, {n} clients: samples", run.who);
    println!();
    println!(
        "| elapsed | RSS MiB | threads | tasks alive | pending acks | connected | \
         server CPU % of one core | acks/s (server) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let rows = shown(&run.samples);
    let mut prev: Option<&Sample> = None;
    for s in rows {
        let sc = scrape(s);
        let (cpu, acks) = match prev {
            Some(p) => (cpu_pct(p, s), acks_per_sec(p, s)),
            None => (None, None),
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            elapsed(s),
            num(mib(s.rss_kib), 1),
            num(s.threads.map(|t| t as f64), 0),
            num(sc.tasks, 0),
            num(sc.pending, 0),
            num(sc.connected, 0),
            num(cpu, 0),
            num(acks, 0)
        );
        prev = Some(s);
    }
    println!();
}

/// The samples the summary compares.
struct Points<'a> {
    empty: Option<&'a Sample>,
    first: Option<&'a Sample>,
    warm: Option<&'a Sample>,
    end: Option<&'a Sample>,
    after: Option<&'a Sample>,
    settled: Option<&'a Sample>,
    load: Vec<&'a Sample>,
}

impl<'a> Points<'a> {
    /// Warm-up: the first sample at or after minute 2 (runs shorter than
    /// 4 minutes: minute 1; smoke, or shorter still: the first sample).
    fn of(run: &'a Run, smoke: bool) -> Self {
        let load: Vec<&Sample> = run
            .samples
            .iter()
            .filter(|s| s.phase == Phase::Load)
            .collect();
        // Minute 2 (the "flat from minute 2 to minute 10") in a
        // run of 4 minutes or more, else minute 1.
        let long = load
            .last()
            .is_some_and(|s| s.at >= Duration::from_secs(240));
        let warm_at = Duration::from_secs(if long { 120 } else { 60 });
        let warm = (!smoke)
            .then(|| load.iter().find(|s| s.at >= warm_at))
            .flatten()
            .or(load.first())
            .copied();
        Self {
            empty: run.samples.iter().find(|s| s.phase == Phase::Empty),
            first: load.first().copied(),
            warm,
            end: load.last().copied(),
            after: run.samples.iter().find(|s| s.phase == Phase::After),
            settled: run.samples.iter().find(|s| s.phase == Phase::Settled),
            load,
        }
    }

    fn rss(s: Option<&Sample>) -> Option<f64> {
        mib(s?.rss_kib)
    }

    fn drift_pct(&self) -> Option<f64> {
        let (w, e) = (Self::rss(self.warm)?, Self::rss(self.end)?);
        (w > 0.0).then(|| 100.0 * (e - w) / w)
    }

    /// "a / b / c" of `f` at the given samples.
    fn trio(&self, at: &[Option<&Sample>], f: impl Fn(&Sample) -> Option<f64>) -> String {
        let parts: Vec<String> = at.iter().map(|s| num(s.and_then(&f), 0)).collect();
        parts.join(" / ")
    }
}

/// A figure read from one run's samples.
type Figure = dyn Fn(&Points) -> Option<f64>;

/// One summary row: a cell per run, and a last column comparing ours
/// with the baseline.
struct Row {
    metric: String,
    cells: Vec<String>,
    compare: String,
}

fn ratio(o: Option<f64>, b: Option<f64>) -> String {
    match (o, b) {
        (Some(o), Some(b)) if b > 0.0 => format!("{:.2}×", o / b),
        _ => String::new(),
    }
}

fn summary(n: usize, args: &Args, runs: &[Run]) -> Vec<Row> {
    let pts: Vec<Points> = runs.iter().map(|r| Points::of(r, args.smoke)).collect();
    let ours = runs.iter().position(|r| r.who == "ours");
    let base = runs.iter().position(|r| r.who == "baseline");
    let mut rows = Vec::new();
    let mut push = |metric: &str, cells: Vec<String>, compare: String| {
        rows.push(Row {
            metric: metric.into(),
            cells,
            compare,
        });
    };
    let pair = |f: &Figure| {
        let at = |i: Option<usize>| i.and_then(|i| f(&pts[i]));
        (at(ours), at(base))
    };
    // RSS.
    let rss_rows: [(&str, &Figure); 5] = [
        ("server RSS, empty (MiB)", &|p| Points::rss(p.empty)),
        ("server RSS after warm-up (MiB)", &|p| Points::rss(p.warm)),
        ("server RSS at the end of the load (MiB)", &|p| {
            Points::rss(p.end)
        }),
        ("server RSS after the clients left (MiB)", &|p| {
            Points::rss(p.after)
        }),
        (
            "server RSS settled, 30 s after the clients left (MiB)",
            &|p| Points::rss(p.settled),
        ),
    ];
    for (metric, f) in rss_rows {
        let (o, b) = pair(f);
        push(
            metric,
            pts.iter().map(|p| num(f(p), 1)).collect(),
            ratio(o, b),
        );
    }
    let (o, b) = pair(&|p| p.drift_pct());
    push(
        "server RSS drift, end vs warm-up (%)",
        pts.iter()
            .map(|p| p.drift_pct().map_or("—".into(), |d| format!("{d:+.1}")))
            .collect(),
        match (o, b) {
            (Some(o), Some(b)) => format!("{:+.1} points", o - b),
            _ => String::new(),
        },
    );
    push(
        "warm-up sample at (s)",
        pts.iter()
            .map(|p| num(p.warm.map(|s| s.at.as_secs_f64()), 0))
            .collect(),
        String::new(),
    );
    push(
        "server threads (empty / warm-up / end / after)",
        pts.iter()
            .map(|p| {
                p.trio(&[p.empty, p.warm, p.end, p.after], |s| {
                    s.threads.map(|t| t as f64)
                })
            })
            .collect(),
        String::new(),
    );
    push(
        "tasks alive (empty / warm-up / end / after)",
        pts.iter()
            .map(|p| p.trio(&[p.empty, p.warm, p.end, p.after], |s| scrape(s).tasks))
            .collect(),
        String::new(),
    );
    push(
        "pending acks (max during the load / at the end / after)",
        pts.iter()
            .map(|p| {
                let max = p
                    .load
                    .iter()
                    .filter_map(|s| scrape(s).pending)
                    .reduce(f64::max);
                format!(
                    "{} / {}",
                    num(max, 0),
                    p.trio(&[p.end, p.after], |s| scrape(s).pending)
                )
            })
            .collect(),
        String::new(),
    );
    push(
        "connected (min during the load / after)",
        pts.iter()
            .map(|p| {
                let min = p
                    .load
                    .iter()
                    .filter_map(|s| scrape(s).connected)
                    .reduce(f64::min);
                format!(
                    "{} / {}",
                    num(min, 0),
                    p.trio(&[p.after], |s| scrape(s).connected)
                )
            })
            .collect(),
        String::new(),
    );
    let cpu = |p: &Points| cpu_pct(p.first?, p.end?);
    let (o, b) = pair(&cpu);
    push(
        "server CPU over the load (% of one core)",
        pts.iter().map(|p| num(cpu(p), 0)).collect(),
        ratio(o, b),
    );
    let soaks: Vec<_> = runs.iter().map(|r| r.load.soak.as_ref()).collect();
    let cell = |f: &dyn Fn(&crate::report::Soak) -> String| -> Vec<String> {
        soaks.iter().map(|s| s.map_or("—".into(), f)).collect()
    };
    push(
        "load process CPU (% of one core)",
        cell(&|s| format!("{:.0}", 100.0 * s.load_cpu_secs / s.secs.max(1e-9))),
        String::new(),
    );
    let cmd_target = n as f64 / args.soak_command_every.as_secs_f64();
    push(
        &format!("commands acked (per s; offered {cmd_target:.0}/s)"),
        cell(&|s| {
            format!(
                "{} ({:.0}/s)",
                s.commands_ok,
                s.commands_ok as f64 / s.secs.max(1e-9)
            )
        }),
        String::new(),
    );
    push(
        "commands failed (by gRPC code)",
        cell(&|s| {
            if s.commands_failed.is_empty() {
                "0".into()
            } else {
                format!("{} {:?}", s.failed(), s.commands_failed)
            }
        }),
        String::new(),
    );
    push(
        "commands skipped (every in-flight slot taken)",
        cell(&|s| {
            format!(
                "{} (bound {}, abandoned at stop {})",
                s.commands_skipped, s.in_flight_bound, s.in_flight_abandoned
            )
        }),
        String::new(),
    );
    let ms = |us: f64| us / 1000.0;
    push(
        "ExecuteCommandSync p50 / p99 / max (ms)",
        cell(&|s| {
            format!(
                "{:.2} / {:.2} / {:.1}",
                ms(s.latency.p50_us),
                ms(s.latency.p99_us),
                ms(s.latency.max_us)
            )
        }),
        String::new(),
    );
    let hb_target = n as f64 / args.soak_heartbeat_every.as_secs_f64();
    push(
        &format!("heartbeats sent / dropped (offered {hb_target:.0}/s)"),
        cell(&|s| {
            format!(
                "{} ({:.0}/s) / {}",
                s.heartbeats_sent,
                s.heartbeats_sent as f64 / s.secs.max(1e-9),
                s.heartbeats_dropped
            )
        }),
        String::new(),
    );
    let at_end = |f: &dyn Fn(&Scrape) -> Option<f64>| -> Vec<String> {
        pts.iter()
            .map(|p| num(p.after.or(p.end).and_then(|s| f(&scrape(s))), 0))
            .collect()
    };
    push(
        "commands timed out (server)",
        at_end(&|s| s.timed_out),
        String::new(),
    );
    push(
        "sessions ended during the load (server)",
        pts.iter()
            .map(|p| {
                let ended = |s: Option<&Sample>| scrape(s?).ended;
                num(
                    ended(p.end)
                        .zip(ended(p.first))
                        .map(|(end, first)| end - first),
                    0,
                )
            })
            .collect(),
        String::new(),
    );
    push(
        "events lost (server)",
        at_end(&|s| s.events_lost),
        String::new(),
    );
    rows
}

/// Prints the sample tables and the summary.
pub fn print(n: usize, args: &Args, runs: &[Run]) {
    println!(
        "### soak, {n} clients: a heartbeat every {} ms and a command every {} ms per client, \
         for {} s per server",
        args.soak_heartbeat_every.as_millis(),
        args.soak_command_every.as_millis(),
        args.soak_duration.as_secs_f64()
    );
    println!();
    for run in runs {
        print_samples(n, run);
    }
    let rows = summary(n, args, runs);
    let names: Vec<&str> = runs.iter().map(|r| r.who).collect();
    println!("| metric | {} | ours / baseline |", names.join(" | "));
    println!("|---|{}---|", "---:|".repeat(names.len()));
    for r in rows {
        println!("| {} | {} | {} |", r.metric, r.cells.join(" | "), r.compare);
    }
    println!();
    println!(
        "- acks/s (server): the operator's `crypto_command_acks_total` over the interval since the \
         row above; server CPU likewise. Tasks, pending acks and connected come from its \
         /metrics (the baseline has none)."
    );
}
