//! What a bench run does, checked before it starts.

use std::time::Duration;

use crate::error::{PdError, Result};

/// Bounds that keep a typo from asking for hours of work.
const MAX_REGIONS: usize = 1_000_000;
const MAX_STORES: usize = 1_000;
const MAX_TRIALS: usize = 100_000;

#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// PD's gRPC endpoints.
    pub pd: Vec<String>,
    /// The PD leader's HTTP address, for its metrics.
    pub pd_http: String,
    /// Simulated stores to register; at least PD's max-replicas.
    pub stores: usize,
    pub regions: usize,
    /// Regions per split report while creating them.
    pub chunk: usize,
    /// Rounds of unchanged reports, each one per region.
    pub rounds: usize,
    /// Route changes timed until every store has them.
    pub trials: usize,
    /// How long one wait (regions created, a change converged) may take.
    pub timeout: Duration,
    /// First made-up store port; each store takes two.
    pub base_port: u16,
}

impl BenchConfig {
    /// # Errors
    ///
    /// `InvalidArgument` naming the setting out of range.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(PdError::InvalidArgument(m));
        if self.pd.is_empty() {
            return bad("--pd: at least one PD endpoint".into());
        }
        for addr in self.pd.iter().chain([&self.pd_http]) {
            crate::catalog::validate_address("pd", addr)?;
        }
        if self.stores == 0 || self.stores > MAX_STORES {
            return bad(format!("--stores {} is not in 1..={MAX_STORES}", self.stores));
        }
        if self.regions == 0 || self.regions > MAX_REGIONS {
            return bad(format!("--regions {} is not in 1..={MAX_REGIONS}", self.regions));
        }
        if self.chunk < 2 || self.chunk > 2_000 {
            return bad(format!("--chunk {} is not in 2..=2000", self.chunk));
        }
        if self.regions.div_ceil(self.chunk) > 2_000 {
            return bad(format!("--regions {} needs more than 2000 chunks of {}", self.regions, self.chunk));
        }
        if self.trials > MAX_TRIALS {
            return bad(format!("--trials {} is above {MAX_TRIALS}", self.trials));
        }
        if self.timeout.is_zero() {
            return bad("--timeout-s must be positive".into());
        }
        if usize::from(self.base_port) + 2 * self.stores > usize::from(u16::MAX) || self.base_port == 0 {
            return bad(format!("--base-port {} leaves no room for {} stores", self.base_port, self.stores));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> BenchConfig {
        BenchConfig {
            pd: vec!["127.0.0.1:2379".into()],
            pd_http: "127.0.0.1:2381".into(),
            stores: 3,
            regions: 100_000,
            chunk: 1_000,
            rounds: 3,
            trials: 200,
            timeout: Duration::from_secs(60),
            base_port: 30_000,
        }
    }

    /// A change to a valid config and the setting its error must name.
    type Case = (fn(&mut BenchConfig), &'static str);

    #[test]
    fn out_of_range_settings_are_named() {
        ok().validate().unwrap();
        let cases: [Case; 6] = [
            (|c| c.pd.clear(), "--pd"),
            (|c| c.stores = 0, "--stores"),
            (|c| c.regions = 0, "--regions"),
            (|c| c.chunk = 1, "--chunk"),
            (
                |c| {
                    c.regions = 1_000_000;
                    c.chunk = 100;
                },
                "chunks",
            ),
            (|c| c.base_port = 65_530, "--base-port"),
        ];
        for (edit, field) in cases {
            let mut c = ok();
            edit(&mut c);
            let err = c.validate().unwrap_err();
            assert!(err.to_string().contains(field), "{field}: {err}");
        }
        let mut c = ok();
        c.pd_http = "nohost".into();
        assert!(matches!(c.validate(), Err(PdError::InvalidArgument(_))));
    }
}
