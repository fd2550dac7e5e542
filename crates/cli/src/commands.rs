//! The commands: `ls`, `inspect`, `call`, `bench`.

use std::io::{Read, Write};
use std::time::Duration;

use bytes::Bytes;
use dockplug_v1::{Address, CallOptions, Client, LocalRegistry, RetryPolicy, TlsOptions};
use serde_json::Value;

use crate::describe::{self, Described};
use crate::format::{self, Format, Template};
use crate::{
    bench, call_failure, chain, discovery_failure, write_err, BenchArgs, CallArgs, Failure,
    InspectArgs, LsArgs, TargetArgs, EXIT_FAILURE, EXIT_PLUGIN_ERROR, EXIT_UNREACHABLE, EXIT_USAGE,
};

/// The fields `ls` templates may name.
const LS_FIELDS: [&str; 7] =
    ["Name", "Addr", "Implements", "Status", "Error", "Source", "TLSConfig"];

/// How long an error stays in the table without `--no-trunc`.
const ERROR_WIDTH: usize = 40;

/// `ls --filter`: values of one key are alternatives; all keys must match.
#[derive(Debug, Default)]
struct Filters {
    name: Vec<String>,
    implements: Vec<String>,
    reachable: Vec<bool>,
}

impl Filters {
    fn parse(args: &[String]) -> Result<Filters, Failure> {
        let mut f = Filters::default();
        for a in args {
            let (k, v) = a.split_once('=').ok_or_else(|| {
                Failure::usage(format!("bad format of filter (expected name=value): {a}"))
            })?;
            match k.trim() {
                "name" => f.name.push(v.to_owned()),
                "implements" => f.implements.push(v.to_owned()),
                "reachable" => f.reachable.push(match v {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => {
                        return Err(Failure::usage(format!(
                            "invalid filter 'reachable={v}' (true or false)"
                        )))
                    }
                }),
                other => {
                    return Err(Failure::usage(format!(
                        "invalid filter '{other}' (name, implements, reachable)"
                    )))
                }
            }
        }
        Ok(f)
    }

    fn keeps(&self, d: &Described) -> bool {
        let implements = |i: &String| {
            d.value["Implements"].as_array().is_some_and(|a| a.iter().any(|x| x == i.as_str()))
        };
        let ok = d.status() == "ok";
        (self.implements.is_empty() || self.implements.iter().any(implements))
            && (self.reachable.is_empty() || self.reachable.contains(&ok))
    }
}

pub(crate) async fn ls(
    dirs: &LocalRegistry,
    a: LsArgs,
    timeout: Duration,
    out: &mut (dyn Write + Send),
    warnings: &mut Vec<Failure>,
) -> Result<(), Failure> {
    let filters = Filters::parse(&a.filter)?;
    let format = match &a.format {
        Some(f) => Format::parse(f).map_err(Failure::usage)?,
        None => Format::Table,
    };
    if let Format::TableOf(t) | Format::Lines(t) = &format {
        if let Some(bad) =
            t.fields().into_iter().find(|f| !f.is_empty() && !LS_FIELDS.contains(&f.as_str()))
        {
            return Err(Failure::usage(format!(
                "template: no field {bad:?} (fields: {})",
                LS_FIELDS.join(", ")
            )));
        }
    }
    let rows: Vec<Described> = describe::list(dirs, &filters.name, timeout)
        .await?
        .into_iter()
        .filter(|d| filters.keeps(d))
        .collect();

    let mut text = String::new();
    if a.json {
        let values: Vec<&Value> = rows.iter().map(|d| &d.value).collect();
        text = serde_json::to_string_pretty(&values).map_err(|e| write_err(e.into()))? + "\n";
    } else if a.quiet {
        for d in &rows {
            text.push_str(d.name());
            text.push('\n');
        }
    } else {
        match &format {
            Format::Table => {
                let mut table = vec![["NAME", "ADDRESS", "IMPLEMENTS", "STATUS", "ERROR"]
                    .map(str::to_owned)
                    .to_vec()];
                for d in &rows {
                    let v = &d.value;
                    let implements = format::plain(&v["Implements"]).replace(", ", ",");
                    let error = format::plain(&v["Error"]);
                    let error =
                        if a.no_trunc { error } else { format::truncate(&error, ERROR_WIDTH) };
                    table.push(vec![
                        d.name().to_owned(),
                        v["Addr"].as_str().unwrap_or("-").to_owned(),
                        if implements.is_empty() { "-".into() } else { implements },
                        d.status().to_owned(),
                        error,
                    ]);
                }
                text = format::table(&table);
            }
            Format::TableOf(t) => {
                let mut table = vec![t.headers()];
                table.extend(rows.iter().map(|d| t.cells(&d.value)));
                text = format::table(&table);
            }
            Format::Json => {
                for d in &rows {
                    text.push_str(&d.value.to_string());
                    text.push('\n');
                }
            }
            Format::Lines(t) => {
                for d in &rows {
                    text.push_str(&t.render(&d.value));
                    text.push('\n');
                }
            }
        }
    }
    out.write_all(text.as_bytes()).map_err(write_err)?;

    let unreachable: Vec<&str> =
        rows.iter().filter(|d| d.status() == "unreachable").map(Described::name).collect();
    let failed: Vec<&str> =
        rows.iter().filter(|d| d.status() == "error").map(Described::name).collect();
    for d in rows.iter().filter(|d| d.status() == "error") {
        if let Some(f) = &d.failure {
            warnings.push(Failure::new(f.code, f.message.clone()));
        }
    }
    if !unreachable.is_empty() {
        let (n, total) = (unreachable.len(), rows.len());
        let noun = if total == 1 { "plugin" } else { "plugins" };
        return Err(Failure::new(
            EXIT_UNREACHABLE,
            format!("{n} of {total} {noun} unreachable: {}", unreachable.join(", ")),
        ));
    }
    if !failed.is_empty() {
        let code = rows.iter().filter_map(|d| d.failure.as_ref()).map(|f| f.code).max();
        return Err(Failure::new(
            code.unwrap_or(EXIT_PLUGIN_ERROR),
            format!("{} of {} plugins failed: {}", failed.len(), rows.len(), failed.join(", ")),
        ));
    }
    Ok(())
}

pub(crate) async fn inspect(
    dirs: &LocalRegistry,
    a: InspectArgs,
    timeout: Duration,
    out: &mut (dyn Write + Send),
    warnings: &mut Vec<Failure>,
) -> Result<(), Failure> {
    // `json` prints each plugin as one line of JSON, as `docker inspect --format json` does.
    let template = match a.format.as_deref().map(str::trim) {
        None => None,
        Some("json") => Some(Template::parse("{{json .}}").map_err(Failure::usage)?),
        Some(t) => Some(Template::parse(t).map_err(Failure::usage)?),
    };
    let jobs = a.names.iter().map(|name| async move {
        match dirs.plugin(name) {
            Ok(spec) => Ok(describe::describe(spec, timeout).await),
            Err(e) => Err(discovery_failure(&e)),
        }
    });
    let results = futures_util::future::join_all(jobs).await;
    let mut found = Vec::new();
    let mut failures = Vec::new();
    for r in results {
        match r {
            Ok(d) => {
                if let Some(f) = d.failure {
                    failures.push(f);
                }
                found.push(d.value);
            }
            Err(f) => failures.push(f),
        }
    }
    let text = match &template {
        Some(t) => found.iter().map(|v| t.render(v) + "\n").collect::<String>(),
        None => serde_json::to_string_pretty(&found).map_err(|e| write_err(e.into()))? + "\n",
    };
    if !found.is_empty() || template.is_none() {
        out.write_all(text.as_bytes()).map_err(write_err)?;
    }
    // Every failure is reported; the exit code is the first one's.
    let mut failures = failures.into_iter();
    let first = failures.next();
    warnings.extend(failures);
    match first {
        Some(f) => Err(f),
        None => Ok(()),
    }
}

pub(crate) async fn call(
    dirs: &LocalRegistry,
    a: CallArgs,
    timeout: Duration,
    out: &mut (dyn Write + Send),
) -> Result<(), Failure> {
    let usage = "usage: dockplug call (NAME | --addr ADDR) METHOD [JSON|-]";
    let (client, method, arg) =
        target(dirs, &a.target, (a.name, a.method, a.json), timeout, 6, usage)?;
    let body = arg.as_deref().map(json_arg).transpose()?;
    let with_addr = a.target.addr.is_some();
    let reply =
        client.call_raw(&method, body, CallOptions::new().timeout(timeout)).await.map_err(|e| {
            let mut f = call_failure(&e);
            if with_addr && client.addr().is_tls() && f.message.contains("certificate") {
                f.message.push_str(" (trust its CA with --tls-ca FILE)");
            }
            f
        })?;
    out.write_all(&reply).map_err(write_err)?;
    if !reply.ends_with(b"\n") {
        writeln!(out).map_err(write_err)?;
    }
    // A 200 whose body carries a non-empty `Err` is a failure to the daemon's generated
    // proxies; say so, after printing the reply.
    match serde_json::from_slice::<dockplug_protocol::ErrorBody>(&reply) {
        Ok(e) if !e.err.is_empty() => {
            Err(Failure::new(EXIT_PLUGIN_ERROR, format!("{method}: {}", e.err)))
        }
        _ => Ok(()),
    }
}

pub(crate) async fn bench(
    dirs: &LocalRegistry,
    b: BenchArgs,
    timeout: Duration,
    out: &mut (dyn Write + Send),
) -> Result<(), Failure> {
    let usage = "usage: dockplug bench (NAME | --addr ADDR) METHOD [JSON] -n N -c C";
    // One idle connection per caller, so the benchmark measures calls, not reconnects.
    let idle = b.c.max(6);
    let (client, method, arg) =
        target(dirs, &b.target, (b.name, b.method, b.json), timeout, idle, usage)?;
    let args = match arg {
        None => Value::Null,
        Some(arg) => {
            let bytes = json_arg(&arg)?;
            serde_json::from_slice(&bytes)
                .map_err(|e| Failure::usage(format!("invalid JSON argument: {e}")))?
        }
    };
    // One probe call: a plugin that does not answer is an error, not a benchmark.
    client.call::<_, Value>(&method, &args).await.map_err(|e| call_failure(&e))?;
    let report = bench::run(client, method, args, b.n, b.c).await;
    if b.json_output {
        let line = serde_json::to_string(&report).map_err(|e| write_err(e.into()))?;
        writeln!(out, "{line}").map_err(write_err)?;
    } else {
        writeln!(
            out,
            "{} calls, concurrency {}: {:.0} calls/s, p50 {} µs, p99 {} µs, {} errors, {} ns CPU per call",
            b.n, report.c, report.calls_per_sec, report.p50_us, report.p99_us, report.errors,
            report.cpu_ns_per_call
        )
        .map_err(write_err)?;
    }
    if report.errors > 0 {
        return Err(Failure::new(
            EXIT_FAILURE,
            format!("{} of {} calls failed", report.errors, b.n),
        ));
    }
    Ok(())
}

/// The client for `--addr` or the named plugin, the method and its argument. With `--addr`
/// the positional arguments are `METHOD [JSON]`, so they shift by one.
fn target(
    dirs: &LocalRegistry,
    t: &TargetArgs,
    (first, second, third): (String, Option<String>, Option<String>),
    timeout: Duration,
    max_idle: usize,
    usage: &str,
) -> Result<(Client, String, Option<String>), Failure> {
    let (addr, tls, method, arg) = match &t.addr {
        Some(a) => {
            if third.is_some() {
                return Err(Failure::usage(usage));
            }
            let parsed: Address =
                a.parse().map_err(|e: dockplug_v1::AddressError| Failure::usage(chain(&e)))?;
            (parsed, Some(addr_tls(t)), first, second)
        }
        None => {
            let method = second.ok_or_else(|| Failure::usage(usage))?;
            let spec = dirs.plugin(&first).map_err(|e| discovery_failure(&e))?;
            (spec.addr, spec.tls, method, third)
        }
    };
    let client = Client::builder(addr)
        .tls(tls)
        .retry(RetryPolicy::never())
        .connect_timeout(timeout)
        .max_idle(max_idle)
        .build()
        .map_err(|e| Failure::new(EXIT_FAILURE, chain(&e)))?;
    Ok((client, method, arg))
}

/// The TLS options of `--addr https://…`: verify against the system roots and `--tls-ca`
/// unless `--tls-insecure`; present `--tls-cert`/`--tls-key` when given.
fn addr_tls(t: &TargetArgs) -> TlsOptions {
    let mut opts = if t.tls_insecure { TlsOptions::insecure() } else { TlsOptions::default() };
    opts.ca_file = t.tls_ca.clone();
    if let (Some(cert), Some(key)) = (&t.tls_cert, &t.tls_key) {
        opts = opts.client_cert(cert, key);
    }
    opts
}

fn json_arg(arg: &str) -> Result<Bytes, Failure> {
    let text = if arg == "-" {
        let mut s = Vec::new();
        std::io::stdin()
            .read_to_end(&mut s)
            .map_err(|e| Failure::new(EXIT_FAILURE, format!("cannot read stdin: {e}")))?;
        s
    } else {
        arg.as_bytes().to_vec()
    };
    serde_json::from_slice::<serde::de::IgnoredAny>(&text)
        .map_err(|e| Failure::new(EXIT_USAGE, format!("invalid JSON argument: {e}")))?;
    Ok(Bytes::from(text))
}
