//! The client's network address, for login throttling and the audit trail.
//!
//! Behind a load balancer the TCP peer is the balancer. `X-Forwarded-For` then names the client,
//! but anyone can send that header, so it is believed only when the peer is a configured proxy,
//! and read from the right: each trusted proxy appends the address it saw, so the rightmost
//! address that is not a trusted proxy is the client as far as Ward can know. Everything left of
//! it is whatever the client claimed.

use std::net::IpAddr;
use std::sync::Arc;

use actix_web::HttpRequest;
use ipnet::IpNet;

/// The proxies whose `X-Forwarded-For` is believed; empty means none.
#[derive(Debug, Clone, Default)]
pub(crate) struct TrustedProxies(Arc<[IpNet]>);

impl TrustedProxies {
    pub(crate) fn new(nets: &[IpNet]) -> Self {
        Self(nets.into())
    }

    fn contains(&self, addr: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&addr))
    }

    /// The client's address given the TCP peer and the `X-Forwarded-For` values, in order.
    fn client_of(&self, peer: IpAddr, forwarded_for: &[&str]) -> IpAddr {
        if !self.contains(peer) {
            return peer;
        }
        let mut client = peer;
        let hops = forwarded_for
            .iter()
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .rev();
        for hop in hops {
            // A hop that is not an address means the header was tampered with; stop at the last
            // address a trusted proxy vouched for.
            let Ok(addr) = hop.parse::<IpAddr>() else {
                break;
            };
            client = addr;
            if !self.contains(addr) {
                break;
            }
        }
        client
    }
}

/// The client address of `request`, as text for the caller context; `None` without a peer.
pub(crate) fn client_addr(request: &HttpRequest) -> Option<String> {
    let peer = request.peer_addr()?.ip();
    let trusted = request
        .app_data::<actix_web::web::Data<TrustedProxies>>()
        .map(|data| data.get_ref().clone())
        .unwrap_or_default();
    let forwarded_for: Vec<&str> = request
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|value| value.to_str().ok())
        .collect();
    Some(trusted.client_of(peer, &forwarded_for).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn alb() -> TrustedProxies {
        TrustedProxies::new(&["10.0.0.0/16".parse().unwrap()])
    }

    #[test]
    fn without_trusted_proxies_the_header_is_ignored() {
        let none = TrustedProxies::default();
        let client = none.client_of(ip("203.0.113.9"), &["198.51.100.1"]);
        assert_eq!(client, ip("203.0.113.9"));
    }

    #[test]
    fn an_untrusted_peer_cannot_name_another_client() {
        let client = alb().client_of(ip("203.0.113.9"), &["10.0.0.5, 198.51.100.1"]);
        assert_eq!(client, ip("203.0.113.9"));
    }

    #[test]
    fn behind_the_balancer_the_rightmost_untrusted_hop_is_the_client() {
        // The client claimed 1.2.3.4; the balancer appended the address it really saw.
        let client = alb().client_of(ip("10.0.3.7"), &["1.2.3.4, 198.51.100.1"]);
        assert_eq!(client, ip("198.51.100.1"));
        // Two trusted hops, and the header split over two lines.
        let client = alb().client_of(ip("10.0.3.7"), &["198.51.100.1", "10.0.9.9"]);
        assert_eq!(client, ip("198.51.100.1"));
    }

    #[test]
    fn garbage_or_a_missing_header_falls_back_to_the_last_vouched_address() {
        assert_eq!(alb().client_of(ip("10.0.3.7"), &[]), ip("10.0.3.7"));
        let client = alb().client_of(ip("10.0.3.7"), &["198.51.100.1, not-an-ip"]);
        assert_eq!(client, ip("10.0.3.7"));
        let client = alb().client_of(ip("10.0.3.7"), &["garbage, 10.0.1.1"]);
        assert_eq!(client, ip("10.0.1.1"));
    }
}
