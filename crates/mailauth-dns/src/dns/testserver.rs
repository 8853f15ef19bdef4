//! A UDP name server on loopback for the resolver's unit tests (`dns` and
//! `dns::udp`): each query is answered with the datagrams a closure makes
//! of it, and the source address of every query is recorded. Owns only the
//! socket loop; what is answered, delayed or counted is each test's.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_resolver::proto::op::{Message, OpCode};

/// The server; it stops when dropped.
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    /// The source address of every datagram received, in order.
    pub(crate) sources: Arc<Mutex<Vec<SocketAddr>>>,
    stop: Arc<AtomicBool>,
}

impl Server {
    /// Answers each query (a datagram that decodes as a DNS message) with
    /// the datagrams `reply` makes of it, none for an empty list.
    pub(crate) fn start(reply: impl Fn(&Message) -> Vec<Vec<u8>> + Send + 'static) -> Server {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        // Wakes the loop to see whether the server was dropped.
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .expect("read timeout");
        let addr = socket.local_addr().expect("addr");
        let sources = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen, done) = (sources.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !done.load(Ordering::SeqCst) {
                let Ok((len, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                seen.lock().unwrap().push(from);
                let Ok(query) = Message::from_vec(&buf[..len]) else {
                    continue;
                };
                for datagram in reply(&query) {
                    let _ = socket.send_to(&datagram, from);
                }
            }
        });
        Server {
            addr,
            sources,
            stop,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// The response to `query` (its ID, its questions, its RD bit) with `edit`
/// applied.
pub(crate) fn response(query: &Message, edit: impl FnOnce(&mut Message)) -> Vec<u8> {
    let mut reply = Message::response(query.metadata.id, OpCode::Query);
    reply.metadata.recursion_desired = query.metadata.recursion_desired;
    reply.queries = query.queries.clone();
    edit(&mut reply);
    reply.to_vec().expect("encode")
}
