//! The control networks: one UDP socket per network (unicast peers or a
//! multicast group) to announce on, and a receiver thread per socket that
//! forwards raw datagrams to the main loop (it authenticates nothing: the
//! main loop does).

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use shoal_config::Config;

use super::{Input, StartError};

pub(super) struct Network {
    /// `control.networks[].name`.
    pub(super) name: String,
    send: UdpSocket,
    /// Peers or the multicast group.
    pub(super) targets: Vec<SocketAddr>,
    /// Datagrams sent.
    pub(super) sent: u64,
    /// Sends that failed.
    pub(super) errors: u64,
    error_logged: bool,
}

impl Network {
    /// Sends `datagram` to every target; a failure is counted, and logged
    /// once until a send succeeds again.
    pub(super) fn send_all(&mut self, datagram: &[u8]) {
        for target in &self.targets {
            match self.send.send_to(datagram, target) {
                Ok(_) => {
                    self.sent += 1;
                    self.error_logged = false;
                }
                Err(e) => {
                    self.errors += 1;
                    if !self.error_logged {
                        tracing::warn!(network = %self.name, %target, "cannot send: {e}");
                        self.error_logged = true;
                    }
                }
            }
        }
    }
}

pub(super) fn open_networks(cfg: &Config) -> Result<(Vec<Network>, Vec<UdpSocket>), StartError> {
    let mut nets = Vec::new();
    let mut receivers = Vec::new();
    for n in &cfg.control.networks {
        let err = |what, addr, source| StartError::Socket {
            network: n.name.clone(),
            what,
            addr,
            source,
        };
        let send = UdpSocket::bind(n.bind).map_err(|e| err("bind", n.bind, e))?;
        let mut targets = n.peers.clone();
        if let Some(group) = n.multicast {
            targets.insert(0, group);
            let same_socket = n.bind.ip().is_unspecified() && n.bind.port() == group.port();
            let recv = if same_socket {
                send.try_clone().map_err(|e| err("bind", n.bind, e))?
            } else {
                UdpSocket::bind(group).map_err(|e| err("bind", group, e))?
            };
            match (group.ip(), n.bind.ip()) {
                (IpAddr::V4(g), IpAddr::V4(i)) => {
                    recv.join_multicast_v4(&g, &i)
                        .map_err(|e| err("join multicast group", group, e))?;
                    send.set_multicast_loop_v4(false)
                        .map_err(|e| err("configure multicast on", n.bind, e))?;
                }
                (IpAddr::V6(g), _) => recv
                    .join_multicast_v6(&g, 0)
                    .map_err(|e| err("join multicast group", group, e))?,
                (IpAddr::V4(_), IpAddr::V6(_)) => {
                    return Err(err(
                        "join multicast group",
                        group,
                        std::io::Error::other("an IPv4 group needs an IPv4 bind address"),
                    ))
                }
            }
            if !same_socket {
                receivers.push(recv);
            }
        }
        receivers.push(send.try_clone().map_err(|e| err("bind", n.bind, e))?);
        nets.push(Network {
            name: n.name.clone(),
            send,
            targets,
            sent: 0,
            errors: 0,
            error_logged: false,
        });
    }
    Ok((nets, receivers))
}

pub(super) fn spawn_receiver(sock: UdpSocket, tx: Sender<Input>, stop: Arc<AtomicBool>) {
    thread::spawn(move || {
        let _ = sock.set_read_timeout(Some(Duration::from_millis(200)));
        let mut buf = vec![0u8; 65_536];
        while !stop.load(Ordering::Relaxed) {
            match sock.recv_from(&mut buf) {
                Ok((n, _)) => {
                    if tx.send(Input::Datagram(buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => thread::sleep(Duration::from_millis(50)),
            }
        }
    });
}

pub(super) fn is_loopback(addr: SocketAddr) -> bool {
    addr.ip().is_loopback()
}
