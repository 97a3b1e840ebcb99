//! Reads PD's Prometheus metrics over plain HTTP, for what the bench checks
//! on the server side: messages handled, raft log index, catalog version.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::{PdError, Result};

/// One scrape of PD's `/metrics`.
pub struct PdMetrics {
    text: String,
}

impl PdMetrics {
    /// # Errors
    ///
    /// `Unavailable` when PD's HTTP address does not answer.
    pub async fn scrape(http_addr: &str) -> Result<PdMetrics> {
        let unavailable = |e: std::io::Error| PdError::Unavailable(format!("PD metrics at {http_addr}: {e}"));
        let mut s = tokio::net::TcpStream::connect(http_addr).await.map_err(unavailable)?;
        s.write_all(format!("GET /metrics HTTP/1.0\r\nHost: {http_addr}\r\n\r\n").as_bytes())
            .await
            .map_err(unavailable)?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.map_err(unavailable)?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        if !text.starts_with("HTTP/1.") || text.get(9..12) != Some("200") {
            return Err(PdError::Unavailable(format!("PD metrics at {http_addr} did not answer 200")));
        }
        Ok(PdMetrics { text })
    }

    /// The value of a sample as written, labels included
    /// (`pd_heartbeat_messages_total{kind="region"}`); 0 when absent.
    pub fn get(&self, sample: &str) -> f64 {
        self.text
            .lines()
            .find_map(|l| {
                l.strip_prefix(sample).and_then(|rest| rest.strip_prefix(' ')).and_then(|v| v.trim().parse().ok())
            })
            .unwrap_or(0.0)
    }
}
