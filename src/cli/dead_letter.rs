//! `jobqueue-operator dead-letter list|replay|purge`: look at, replay or drop the jobs that
//! failed `maxDeliveries` times.

use anyhow::bail;

use super::inspect::Output;
use super::target::TargetArgs;
use crate::queue::dead_letter::{self, DeadLetter};

/// `dead-letter` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum DeadLetterCommand {
    /// List dead-lettered jobs, oldest first.
    List(ListArgs),
    /// Put dead-lettered jobs back into the queue with attempt 1 (each exactly once).
    Replay(ReplayArgs),
    /// Delete the dead-letter stream (requires --yes).
    Purge(PurgeArgs),
}

/// The queue a dead-letter command works on.
#[derive(Debug, clap::Args)]
pub struct QueueArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// The queue's stream key (omit with -f).
    #[arg(value_name = "STREAM")]
    stream: Option<String>,
}

/// Arguments of `dead-letter list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    queue: QueueArgs,
    /// At most this many entries.
    #[arg(long, default_value_t = 100)]
    count: usize,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    output: Output,
}

/// Arguments of `dead-letter replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    queue: QueueArgs,
    /// Replay only these dead-letter entry ids (repeatable); default: all.
    #[arg(long = "id", value_name = "ID")]
    ids: Vec<String>,
}

/// Arguments of `dead-letter purge`.
#[derive(Debug, clap::Args)]
pub struct PurgeArgs {
    #[command(flatten)]
    queue: QueueArgs,
    /// Confirm deleting every dead letter.
    #[arg(long)]
    yes: bool,
}

/// Runs a `dead-letter` subcommand.
pub async fn run(cmd: DeadLetterCommand) -> anyhow::Result<()> {
    match cmd {
        DeadLetterCommand::List(a) => list(a).await,
        DeadLetterCommand::Replay(a) => replay(a).await,
        DeadLetterCommand::Purge(a) => purge(a).await,
    }
}

async fn list(args: ListArgs) -> anyhow::Result<()> {
    if args.count == 0 {
        bail!("--count must be at least 1");
    }
    let target = args
        .queue
        .target
        .resolve(args.queue.stream.as_deref(), None)?;
    let mut conn = target.connect().await?;
    let letters = dead_letter::list(&mut conn, &target.cfg, args.count).await?;
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&letters)?),
        Output::Table => print!("{}", table(&letters)),
    }
    Ok(())
}

fn table(letters: &[DeadLetter]) -> String {
    let cols = [
        "id",
        "attempt",
        "reason",
        "last_failure",
        "last_consumer",
        "original_id",
    ];
    let mut rows: Vec<Vec<String>> = vec![
        [
            "DEAD ID",
            "JOB ID",
            "ATTEMPT",
            "REASON",
            "LAST FAILURE",
            "LAST CONSUMER",
            "ORIGINAL ID",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for d in letters {
        let mut row = vec![d.dead_id.clone()];
        row.extend(cols.iter().map(|c| d.get(c).unwrap_or("-").to_string()));
        rows.push(row);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

async fn replay(args: ReplayArgs) -> anyhow::Result<()> {
    if let Some(bad) = args.ids.iter().find(|id| !is_stream_id(id)) {
        bail!("--id {bad:?} is not a stream entry id (like 1700000000000-0)");
    }
    let target = args
        .queue
        .target
        .resolve(args.queue.stream.as_deref(), None)?;
    let mut conn = target.connect().await?;
    let r = dead_letter::replay(&mut conn, &target.cfg, &args.ids, 200).await?;
    println!(
        "replayed {} dead letters into {}",
        r.entry_ids.len(),
        target.cfg.stream()
    );
    if r.skipped > 0 {
        eprintln!(
            "left {} entries that are not jobs (malformed delayed members)",
            r.skipped
        );
    }
    Ok(())
}

async fn purge(args: PurgeArgs) -> anyhow::Result<()> {
    let target = args
        .queue
        .target
        .resolve(args.queue.stream.as_deref(), None)?;
    if !args.yes {
        bail!(
            "refusing to delete the dead-letter stream {:?} without --yes",
            target.cfg.dead_letter
        );
    }
    let mut conn = target.connect().await?;
    let n = dead_letter::purge(&mut conn, &target.cfg).await?;
    println!("purged {n} dead letters from {}", target.cfg.dead_letter);
    Ok(())
}

fn is_stream_id(s: &str) -> bool {
    match s.split_once('-') {
        Some((ms, seq)) => {
            !ms.is_empty()
                && !seq.is_empty()
                && ms.bytes().all(|b| b.is_ascii_digit())
                && seq.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn stream_ids_are_recognised() {
        assert!(super::is_stream_id("1700000000000-0"));
        for bad in ["", "-", "1-", "-1", "abc-1", "1-2-3", "1700000000000"] {
            assert!(!super::is_stream_id(bad), "{bad}");
        }
    }
}
