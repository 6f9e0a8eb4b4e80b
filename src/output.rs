//! Everything this program prints goes through here: scrubbed of secret values (see
//! [`crate::secret::scrub`]) at the last moment, and a closed pipe (`--status | head`) ends the
//! output quietly instead of aborting the program.

use std::io::{self, Write};

/// Write `text` to stdout, scrubbed; a write error (a closed pipe) is ignored.
pub fn stdout(text: &str) {
    let _ = io::stdout()
        .lock()
        .write_all(crate::secret::scrub(text).as_bytes());
}

/// Write `text` to stderr, scrubbed; a write error is ignored.
pub fn stderr(text: &str) {
    let _ = io::stderr()
        .lock()
        .write_all(crate::secret::scrub(text).as_bytes());
}

/// A line on stdout (`println!`, scrubbed).
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::output::stdout(&format!("{}\n", format_args!($($arg)*)))
    };
}

/// Text on stdout without a line break added (`print!`, scrubbed).
#[macro_export]
macro_rules! say_raw {
    ($($arg:tt)*) => {
        $crate::output::stdout(&format!($($arg)*))
    };
}

/// A line on stderr (`eprintln!`, scrubbed).
#[macro_export]
macro_rules! say_err {
    ($($arg:tt)*) => {
        $crate::output::stderr(&format!("{}\n", format_args!($($arg)*)))
    };
}

/// The log writer: each formatted log event is scrubbed before it reaches stderr.
#[derive(Debug, Default, Clone, Copy)]
pub struct ScrubbedStderr;

impl Write for ScrubbedStderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        stderr(&String::from_utf8_lossy(buf));
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let _ = io::stderr().flush();
        Ok(())
    }
}

/// Flush stdout at exit, ignoring a closed pipe.
pub fn flush() {
    let _ = io::stdout().flush();
}
