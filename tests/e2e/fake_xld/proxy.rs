//! A TCP proxy in front of the fake that drops connections on cue: before the request reaches
//! the server, or after the server handled it (the answer is lost). It reads each
//! connection's request line; the fake closes every connection after one answer, so every
//! request arrives on a new connection.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::world::{FaultKind, World};

pub struct DropProxy {
    pub address: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DropProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl DropProxy {
    pub async fn start(upstream: SocketAddr, world: Arc<Mutex<World>>) -> DropProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the drop proxy on loopback");
        let address = listener.local_addr().expect("proxy address");
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(client, upstream, Arc::clone(&world)));
            }
        });
        DropProxy { address, task }
    }
}

/// Reads up to the end of the request head (or 64 KiB).
async fn read_head(client: &mut TcpStream) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
        let n = client.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Some(head)
}

async fn relay(mut client: TcpStream, upstream: SocketAddr, world: Arc<Mutex<World>>) {
    let Some(head) = read_head(&mut client).await else {
        return;
    };
    let line = String::from_utf8_lossy(&head);
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default();
    let path = path.split('?').next().unwrap_or_default().to_string();
    let (fault, held) = {
        let mut world = world.lock().unwrap_or_else(|e| e.into_inner());
        (
            world.take_fault(&method, &path, true),
            Arc::clone(&world.held),
        )
    };
    if fault == Some(FaultKind::DropBefore) {
        return; // dropping `client` closes the connection unanswered
    }
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    if server.write_all(&head).await.is_err() {
        return;
    }
    if fault == Some(FaultKind::DropAfter) {
        // Forward the rest of the request, wait until the server answers, then hang up.
        let (mut client_read, _client_write) = client.split();
        let (mut server_read, mut server_write) = server.split();
        let forward = tokio::io::copy(&mut client_read, &mut server_write);
        let mut first = [0u8; 1];
        tokio::select! {
            _ = forward => {}
            _ = server_read.read(&mut first) => {}
        }
        return;
    }
    if fault == Some(FaultKind::HoldAnswer) {
        hold_answer(client, server, &held).await;
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}

/// Forwards the rest of the request, reads the server's whole answer (the fake closes each
/// connection after one), and relays it only once the test releases it.
async fn hold_answer(mut client: TcpStream, mut server: TcpStream, held: &tokio::sync::Semaphore) {
    let (mut client_read, mut client_write) = client.split();
    let (mut server_read, mut server_write) = server.split();
    let forward = tokio::io::copy(&mut client_read, &mut server_write);
    let mut answer = Vec::new();
    let read_answer = server_read.read_to_end(&mut answer);
    tokio::pin!(forward, read_answer);
    let mut forwarding = true;
    loop {
        tokio::select! {
            _ = &mut forward, if forwarding => forwarding = false,
            _ = &mut read_answer => break,
        }
    }
    if let Ok(permit) = held.acquire().await {
        permit.forget();
    }
    let _ = client_write.write_all(&answer).await;
}
