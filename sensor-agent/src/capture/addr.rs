//! Text forms of connection addresses, as `Display` writes them, without `fmt`.
//!
//! Each exchange's record and detection name its addresses; through `to_string` an IPv4 socket
//! address cost about a thousand instructions (a formatter per octet, padding checks), more than
//! parsing the request head. IPv6 keeps the standard formatter: its compression rules are not
//! worth repeating for the rarer case.
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// `a.to_string()`.
#[must_use]
pub fn socket_text(a: &SocketAddr) -> String {
    match a {
        SocketAddr::V4(v4) => {
            let mut s = String::with_capacity(21);
            push_ipv4(&mut s, *v4.ip());
            s.push(':');
            push_decimal(&mut s, v4.port());
            s
        }
        SocketAddr::V6(_) => a.to_string(),
    }
}

/// `ip.to_string()`.
#[must_use]
pub fn ip_text(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let mut s = String::with_capacity(15);
            push_ipv4(&mut s, v4);
            s
        }
        IpAddr::V6(_) => ip.to_string(),
    }
}

fn push_ipv4(s: &mut String, ip: Ipv4Addr) {
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            s.push('.');
        }
        push_decimal(s, u16::from(octet));
    }
}

fn push_decimal(s: &mut String, n: u16) {
    s.push_str(itoa::Buffer::new().format(n));
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv6Addr, SocketAddrV6};

    use super::*;

    #[test]
    fn same_text_as_display() {
        let octets = [0u8, 1, 9, 10, 42, 99, 100, 127, 199, 200, 255];
        let ports = [0u16, 1, 9, 10, 80, 443, 999, 1000, 8080, 18080, 65535];
        for &a in &octets {
            for &b in &octets {
                let ip = Ipv4Addr::new(a, b, b, a);
                assert_eq!(ip_text(IpAddr::V4(ip)), ip.to_string());
                for &port in &ports {
                    let sa = SocketAddr::from((ip, port));
                    assert_eq!(socket_text(&sa), sa.to_string());
                }
            }
        }
        let v6 = SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 8443, 0, 0));
        assert_eq!(socket_text(&v6), "[::1]:8443");
        assert_eq!(ip_text(v6.ip()), "::1");
    }
}
