//! A `pdctl` command running in the background whose progress lines a test
//! can follow one at a time, so the test plays the other side only once
//! pdctl has printed what comes before (a command started after the change
//! it waits for would print only the end state).

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

use crate::binary;

pub struct PdctlRun {
    child: Child,
    stdout: Lines<BufReader<ChildStdout>>,
    /// Every stdout line read so far, newline-terminated.
    out: String,
}

impl PdctlRun {
    /// Starts `pdctl` with `args`.
    ///
    /// # Panics
    ///
    /// If pdctl cannot be started.
    pub fn spawn(args: &[&str]) -> Self {
        let mut child = tokio::process::Command::new(binary("pdctl"))
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start pdctl");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        Self { child, stdout, out: String::new() }
    }

    /// Reads stdout until a line containing `needle`, and returns that line.
    ///
    /// # Panics
    ///
    /// If no such line comes within `timeout`, or pdctl closes its stdout
    /// first; the message holds everything it printed.
    pub async fn line_containing(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let next = tokio::time::timeout_at(deadline, self.stdout.next_line()).await;
            match next {
                Ok(Ok(Some(line))) => {
                    self.out.push_str(&line);
                    self.out.push('\n');
                    if line.contains(needle) {
                        return line;
                    }
                }
                Ok(Ok(None)) => panic!("pdctl ended its output before {needle:?}:\n{}", self.out),
                Ok(Err(e)) => panic!("reading pdctl's output: {e}"),
                Err(_) => panic!("no line with {needle:?} from pdctl within {timeout:?}:\n{}", self.out),
            }
        }
    }

    /// Waits for pdctl to exit: exit code, all of stdout, stderr.
    ///
    /// # Panics
    ///
    /// If it does not exit within `timeout`.
    pub async fn finish(mut self, timeout: Duration) -> (i32, String, String) {
        let rest = async {
            while let Some(line) = self.stdout.next_line().await.expect("pdctl stdout") {
                self.out.push_str(&line);
                self.out.push('\n');
            }
            let mut err = String::new();
            if let Some(mut stderr) = self.child.stderr.take() {
                stderr.read_to_string(&mut err).await.expect("pdctl stderr");
            }
            let status = self.child.wait().await.expect("pdctl exit");
            (status.code().unwrap_or(-1), err)
        };
        let (code, err) = tokio::time::timeout(timeout, rest)
            .await
            .unwrap_or_else(|_| panic!("pdctl did not exit within {timeout:?}"));
        (code, self.out, err)
    }
}
