//! Where local mode writes: log lines (ours and the workers') and, on a terminal, a status block
//! pinned to the bottom rows. The block lives outside the terminal's scroll region, so any line
//! written by anyone (worker output, tracing on stderr) scrolls above it without tearing it.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use super::sys;

/// Shared writer of local mode's output.
pub struct Console {
    /// Whether stdout is a terminal (then the status block is drawn).
    tty: bool,
    /// Rows reserved for the block at the last draw, and the terminal height then.
    block: Mutex<Option<Block>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Block {
    rows: u16,
    height: u16,
}

impl Console {
    /// A console on this process's stdout and stderr.
    pub fn new() -> Self {
        Console {
            tty: std::io::stdout().is_terminal(),
            block: Mutex::new(None),
        }
    }

    /// Whether a live view is shown (otherwise status goes out as log lines).
    pub fn is_tty(&self) -> bool {
        self.tty
    }

    /// A line on stdout.
    pub fn line(&self, text: &str) {
        let _guard = self.block.lock();
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }

    /// A line on stderr (errors and warnings).
    pub fn error(&self, text: &str) {
        let _guard = self.block.lock();
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{text}");
    }

    /// Redraws the status block with `lines` (terminal only; the block grows and shrinks with
    /// the number of lines, within half the screen).
    pub fn draw(&self, lines: &[String]) {
        if !self.tty {
            return;
        }
        let Some((height, width)) = sys::terminal_size() else {
            return;
        };
        let mut block = self.block.lock().unwrap_or_else(|e| e.into_inner());
        let rows = (lines.len() as u16).min(height / 2).max(1);
        let mut seq = String::new();
        let want = Block { rows, height };
        if *block != Some(want) {
            let old = block.map_or(0, |b| b.rows);
            // Make room by scrolling the current content up, then shrink the scroll region.
            for _ in old..rows {
                seq.push_str(&format!("\x1b[{height};1H\n"));
            }
            seq.push_str(&format!("\x1b[1;{}r", height - rows));
            *block = Some(want);
        }
        seq.push_str("\x1b7");
        for (i, line) in lines.iter().take(rows as usize).enumerate() {
            let row = height - rows + 1 + i as u16;
            seq.push_str(&format!("\x1b[{row};1H\x1b[2K"));
            seq.push_str(&truncate(line, width as usize));
        }
        seq.push_str("\x1b8");
        let mut out = std::io::stdout().lock();
        // One write: the terminal never shows half a block.
        let _ = out.write_all(seq.as_bytes());
        let _ = out.flush();
    }

    /// Gives the whole screen back (at exit), leaving the last block visible.
    pub fn release(&self) {
        let mut block = self.block.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = block.take() {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "\x1b[r\x1b[{};1H", b.height);
            let _ = out.flush();
        }
    }
}

impl Default for Console {
    fn default() -> Self {
        Self::new()
    }
}

/// `s` cut to `width` characters (a wrapped line would push the block off the screen).
fn truncate(s: &str, width: usize) -> String {
    s.chars().take(width.max(1)).collect()
}
