//! The fixed loopback ports the playground's processes listen on, each with
//! the flag that moves it, so a port taken by another program is reported
//! as one line naming the port and the flag, before anything starts.

use std::io;
use std::net::TcpListener;

/// One port a playground process will listen on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortClaim {
    pub port: u16,
    /// The playground flag that moves this port (`--pd-port`, `--store-port`).
    pub flag: &'static str,
}

impl PortClaim {
    /// Every port of `members` PD members from `pd_port` and `stores`
    /// storage nodes from `store_port`: member or store i on base + 10*(i-1)
    /// (gRPC) and that + 2 (HTTP). An error names the flag whose range runs
    /// past the last port.
    pub fn playground(pd_port: u16, members: u64, store_port: u16, stores: u64) -> Result<Vec<PortClaim>, String> {
        let mut claims = Self::group("pd", "--pd-port", pd_port, members)?;
        claims.extend(Self::group("store", "--store-port", store_port, stores)?);
        Ok(claims)
    }

    fn group(name: &str, flag: &'static str, base: u16, count: u64) -> Result<Vec<PortClaim>, String> {
        let mut claims = Vec::new();
        for i in 1..=count {
            let grpc = u64::from(base) + 10 * (i - 1);
            let http = grpc + 2;
            if http > u64::from(u16::MAX) {
                return Err(format!(
                    "{flag} {base} leaves no room for {count} {name}s (port {http} is past {})",
                    u16::MAX
                ));
            }
            for port in [grpc, http] {
                claims.push(PortClaim { port: port as u16, flag });
            }
        }
        Ok(claims)
    }

    /// Whether the port can be listened on now on 127.0.0.1 (the listener is
    /// closed again at once).
    pub fn check(&self) -> io::Result<()> {
        TcpListener::bind(("127.0.0.1", self.port)).map(drop)
    }

    /// The one line that says why the port cannot be used and which flag
    /// changes it.
    pub fn error_line(&self, e: &io::Error) -> String {
        let why = match e.kind() {
            io::ErrorKind::AddrInUse => "is already in use".to_string(),
            _ => format!("cannot be listened on: {e}"),
        };
        format!("error: port {} {why} (change it with {})", self.port, self.flag)
    }

    /// The first of `claims` that cannot be listened on, with its error
    /// line; `None` when every port is free.
    pub fn first_unusable(claims: &[PortClaim]) -> Option<String> {
        claims.iter().find_map(|c| c.check().err().map(|e| c.error_line(&e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_member_and_store_gets_grpc_and_http() {
        let claims = PortClaim::playground(2379, 3, 20160, 2).unwrap();
        let got: Vec<(u16, &str)> = claims.iter().map(|c| (c.port, c.flag)).collect();
        assert_eq!(
            got,
            vec![
                (2379, "--pd-port"),
                (2381, "--pd-port"),
                (2389, "--pd-port"),
                (2391, "--pd-port"),
                (2399, "--pd-port"),
                (2401, "--pd-port"),
                (20160, "--store-port"),
                (20162, "--store-port"),
                (20170, "--store-port"),
                (20172, "--store-port"),
            ]
        );
    }

    #[test]
    fn a_range_past_the_last_port_names_its_flag() {
        let e = PortClaim::playground(2379, 1, 65530, 3).unwrap_err();
        assert!(e.starts_with("--store-port 65530 leaves no room for 3 stores"), "{e}");
        assert!(PortClaim::playground(65533, 1, 20160, 1).is_ok());
        assert!(PortClaim::playground(65534, 1, 20160, 1).unwrap_err().starts_with("--pd-port 65534"));
    }

    #[test]
    fn a_taken_store_port_names_the_port_and_store_port() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let claims = vec![PortClaim { port, flag: "--store-port" }];
        assert_eq!(
            PortClaim::first_unusable(&claims).as_deref(),
            Some(format!("error: port {port} is already in use (change it with --store-port)").as_str())
        );
        drop(taken);
    }

    #[test]
    fn other_bind_errors_are_named_too() {
        let claim = PortClaim { port: 2379, flag: "--pd-port" };
        let e = io::Error::from(io::ErrorKind::PermissionDenied);
        let line = claim.error_line(&e);
        assert!(line.starts_with("error: port 2379 cannot be listened on: "), "{line}");
        assert!(line.ends_with("(change it with --pd-port)"), "{line}");
    }
}
