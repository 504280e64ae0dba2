//! Scripts: one step a line, `#` comments. The same steps drive interactive mode.
//!
//! ```text
//! online                  connect, boot, report status, sync the local list, replay
//! offline                 drop the connection (power or network gone)
//! tap <uid>               hold an RFID card to the reader
//! plug | unplug           the car's cable
//! charge <time> <watts>   energy flows for <time> (e.g. 500ms, 2s) at <watts>
//! commands <time>         serve the server's commands (remote stop/start) for <time>
//! claim <code>            ownership claim with a transfer code (new credentials follow)
//! rekey                   rotate its own credentials
//! sync                    refresh the local list
//! wait <time>             do nothing
//! ```

use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};

use crate::charger::Charger;

/// One step of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Online,
    Offline,
    Tap(String),
    Plug,
    Unplug,
    Charge(Duration, i64),
    Commands(Duration),
    Claim(String),
    Rekey,
    Sync,
    Wait(Duration),
}

/// `500ms`, `2s`, `1m`.
pub fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    let (n, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map(|i| s.split_at(i))
        .ok_or_else(|| anyhow!("{s:?}: a duration needs a unit (ms, s, m)"))?;
    let n: u64 = n.parse().with_context(|| format!("{s:?}"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => bail!("{s:?}: unit is ms, s or m"),
    }
}

/// Reads one line; `None` for a blank line or a comment.
pub fn parse_step(line: &str) -> anyhow::Result<Option<Step>> {
    let line = line.split('#').next().unwrap_or("").trim();
    let words: Vec<&str> = line.split_whitespace().collect();
    let step = match words.as_slice() {
        [] => return Ok(None),
        ["online"] => Step::Online,
        ["offline"] => Step::Offline,
        ["tap", uid] => Step::Tap((*uid).to_owned()),
        ["plug"] => Step::Plug,
        ["unplug"] => Step::Unplug,
        ["charge", t, w] => Step::Charge(parse_duration(t)?, w.parse().context("watts")?),
        ["commands", t] => Step::Commands(parse_duration(t)?),
        ["claim", code] => Step::Claim((*code).to_owned()),
        ["rekey"] => Step::Rekey,
        ["sync"] => Step::Sync,
        ["wait", t] => Step::Wait(parse_duration(t)?),
        _ => bail!("unknown step {line:?}"),
    };
    Ok(Some(step))
}

/// Parses a whole script; an error names the line.
pub fn parse_script(text: &str) -> anyhow::Result<Vec<Step>> {
    let mut steps = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if let Some(step) = parse_step(line).with_context(|| format!("line {}", n + 1))? {
            steps.push(step);
        }
    }
    Ok(steps)
}

/// Runs one step.
pub async fn run_step(charger: &mut Charger, step: &Step) -> anyhow::Result<()> {
    match step {
        Step::Online => charger.online().await,
        Step::Offline => {
            charger.offline();
            Ok(())
        }
        Step::Tap(uid) => charger.tap(uid).await,
        Step::Plug => charger.plug().await,
        Step::Unplug => charger.unplug().await,
        Step::Charge(t, w) => charger.charge(*t, *w).await,
        Step::Commands(t) => charger.serve_commands(*t).await,
        Step::Claim(code) => charger.claim(code).await,
        Step::Rekey => charger.rekey().await,
        Step::Sync => charger.sync_list().await,
        Step::Wait(t) => {
            tokio::time::sleep(*t).await;
            Ok(())
        }
    }
}

/// Runs one step on an OCPP 1.6 charger (claim, rekey and sync are MyBox's only).
pub async fn run_ocpp_step(
    charger: &mut crate::ocpp::OcppCharger,
    step: &Step,
) -> anyhow::Result<()> {
    match step {
        Step::Online => charger.online().await,
        Step::Offline => {
            charger.offline().await;
            Ok(())
        }
        Step::Tap(uid) => charger.tap(uid).await,
        Step::Plug => charger.plug().await,
        Step::Unplug => charger.unplug().await,
        Step::Charge(t, w) => charger.charge(*t, *w).await,
        Step::Commands(t) => charger.serve_commands(*t).await,
        Step::Claim(_) | Step::Rekey | Step::Sync => {
            bail!("an OCPP charger has no claim, rekey or sync step (the server pushes its list)")
        }
        Step::Wait(t) => {
            tokio::time::sleep(*t).await;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_parse_and_name_bad_lines() {
        let steps = parse_script("online\n# comment\ntap 04a1b2c3\ncharge 500ms 11000 # fast\n")
            .expect("parses");
        assert_eq!(
            steps,
            vec![
                Step::Online,
                Step::Tap("04a1b2c3".into()),
                Step::Charge(Duration::from_millis(500), 11_000)
            ]
        );
        let err = parse_script("online\nfly\n").expect_err("bad");
        assert!(format!("{err:#}").contains("line 2"), "{err:#}");
        assert!(parse_duration("5").is_err());
        assert_eq!(parse_duration("2m").expect("ok"), Duration::from_secs(120));
    }
}
