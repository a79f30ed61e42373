//! Prototype: a pooled hyper 1.x HTTP/1.1 client on a one-thread tokio runtime, with two
//! asyncio bridges, to measure whether it beats the hand-written asyncio client per request.
//!
//! bridge "naive":   per response the tokio thread takes the GIL and calls
//!                   loop.call_soon_threadsafe(fut.set_result, value)
//! bridge "batched": the tokio thread pushes (id, outcome) onto a Mutex<Vec> (no GIL) and writes
//!                   an eventfd only when the queue went empty -> non-empty; the loop's reader
//!                   callback calls drain(), one native call that sets every completed future.
//! Submissions (post) go through Handle::spawn: the inject queue plus an unpark of the tokio
//! driver when it sleeps. `submit` = "batched" additionally queues submissions on the Python
//! side and hands them over in one native call per loop iteration (flush()).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{HeaderMap, Method, Request, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HClient;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use pyo3::exceptions::{PyConnectionError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyTuple};

type HttpClient = HClient<HttpConnector, Full<Bytes>>;

enum Outcome {
    Ok { status: u16, headers: HeaderMap, body: Bytes },
    Err(String),
}

struct Shared {
    queue: Mutex<Vec<(u64, Outcome)>>,
    efd: i32,
}

#[pyclass(frozen)]
struct Client {
    handle: tokio::runtime::Handle,
    http: HttpClient,
    own: Option<Arc<OwnPool>>,
    null_body: Option<Bytes>,
    batched: bool,
    shared: Arc<Shared>,
    pending: Mutex<HashMap<u64, Py<PyAny>>>,
    // requests waiting for flush() (submit="batched")
    outbox: Mutex<Vec<(u64, Request<Full<Bytes>>, Option<Py<PyAny>>)>>,
    batch_submit: bool,
    next_id: AtomicU64,
    event_loop: Py<PyAny>,
    tid: i32,
    max_body: usize,
    stop: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

/// Our own pool of hyper http1 connections to one origin (no legacy-client checkout machinery).
struct OwnPool {
    addr: String,
    idle: Mutex<Vec<hyper::client::conn::http1::SendRequest<Full<Bytes>>>>,
}

#[derive(Clone)]
enum Transport {
    Legacy(HttpClient),
    Own(Arc<OwnPool>),
    /// no HTTP at all: a canned response, to measure the bridge alone
    Null(Bytes),
}

async fn exchange(http: Transport, req: Request<Full<Bytes>>, max_body: usize) -> Outcome {
    match http {
        Transport::Legacy(http) => exchange_legacy(http, req, max_body).await,
        Transport::Own(pool) => exchange_own(pool, req, max_body).await,
        Transport::Null(body) => {
            drop(req);
            let mut headers = HeaderMap::new();
            headers.insert(hyper::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            headers.insert(hyper::header::CONTENT_LENGTH, HeaderValue::from(body.len()));
            Outcome::Ok { status: 200, headers, body }
        }
    }
}

async fn exchange_own(pool: Arc<OwnPool>, req: Request<Full<Bytes>>, max_body: usize) -> Outcome {
    let mut sender = loop {
        let idle = pool.idle.lock().unwrap().pop();
        match idle {
            Some(s) if !s.is_closed() => break s,
            Some(_) => continue,
            None => {
                let stream = match tokio::net::TcpStream::connect(&pool.addr).await {
                    Ok(s) => s,
                    Err(e) => return Outcome::Err(e.to_string()),
                };
                let _ = stream.set_nodelay(true);
                match hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await {
                    Ok((s, conn)) => {
                        tokio::spawn(conn);
                        break s;
                    }
                    Err(e) => return Outcome::Err(e.to_string()),
                }
            }
        }
    };
    if let Err(e) = sender.ready().await {
        return Outcome::Err(e.to_string());
    }
    let resp = match sender.send_request(req).await {
        Ok(r) => r,
        Err(e) => return Outcome::Err(e.to_string()),
    };
    let (parts, body) = resp.into_parts();
    let out = match Limited::new(body, max_body).collect().await {
        Ok(collected) => Outcome::Ok { status: parts.status.as_u16(), headers: parts.headers, body: collected.to_bytes() },
        Err(e) => return Outcome::Err(e.to_string()),
    };
    if !sender.is_closed() {
        pool.idle.lock().unwrap().push(sender);
    }
    out
}

async fn exchange_legacy(http: HttpClient, req: Request<Full<Bytes>>, max_body: usize) -> Outcome {
    match http.request(req).await {
        Err(e) => Outcome::Err(format!("{e:?}")),
        Ok(resp) => {
            let (parts, body) = resp.into_parts();
            match Limited::new(body, max_body).collect().await {
                Ok(collected) => Outcome::Ok {
                    status: parts.status.as_u16(),
                    headers: parts.headers,
                    body: collected.to_bytes(),
                },
                Err(e) => Outcome::Err(e.to_string()),
            }
        }
    }
}

/// (status, {lower-case name: value, repeated joined with ", "}, body bytes), or an exception.
fn to_py(py: Python<'_>, out: Outcome) -> Result<PyObject, PyObject> {
    match out {
        Outcome::Err(msg) => Err(PyConnectionError::new_err(msg).into_value(py).into_any()),
        Outcome::Ok { status, headers, body } => {
            let dict = PyDict::new(py);
            for name in headers.keys() {
                let mut joined = String::new();
                for (i, v) in headers.get_all(name).iter().enumerate() {
                    if i > 0 {
                        joined.push_str(", ");
                    }
                    joined.push_str(&String::from_utf8_lossy(v.as_bytes()));
                }
                dict.set_item(name.as_str(), joined).map_err(|e| e.into_value(py).into_any())?;
            }
            let tuple = PyTuple::new(
                py,
                [status.into_pyobject(py).unwrap().into_any(), dict.into_any(), PyBytes::new(py, &body).into_any()],
            )
            .map_err(|e| e.into_value(py).into_any())?;
            Ok(tuple.into_any().unbind())
        }
    }
}

fn complete_naive(fut: Py<PyAny>, event_loop: Py<PyAny>, out: Outcome) {
    Python::with_gil(|py| {
        let (method, value) = match to_py(py, out) {
            Ok(v) => (intern!(py, "set_result"), v),
            Err(e) => (intern!(py, "set_exception"), e),
        };
        let r = fut
            .getattr(py, method)
            .and_then(|setter| event_loop.call_method1(py, intern!(py, "call_soon_threadsafe"), (setter, value)));
        if let Err(e) = r {
            e.print(py); // loop closed, etc.
        }
        drop(fut);
        drop(event_loop);
    });
}

impl Client {
    fn transport(&self) -> Transport {
        if let Some(body) = &self.null_body {
            return Transport::Null(body.clone());
        }
        match &self.own {
            Some(pool) => Transport::Own(pool.clone()),
            None => Transport::Legacy(self.http.clone()),
        }
    }

    fn spawn(&self, py: Python<'_>, id: u64, req: Request<Full<Bytes>>, fut: Option<Py<PyAny>>) {
        let http = self.transport();
        let max = self.max_body;
        if self.batched {
            let shared = self.shared.clone();
            self.handle.spawn(async move {
                let out = exchange(http, req, max).await;
                let was_empty = {
                    let mut q = shared.queue.lock().unwrap();
                    let was_empty = q.is_empty();
                    q.push((id, out));
                    was_empty
                };
                if was_empty {
                    let one: u64 = 1;
                    unsafe { libc::write(shared.efd, &one as *const u64 as *const libc::c_void, 8) };
                }
            });
        } else {
            let fut = fut.expect("naive bridge keeps its future");
            let event_loop = self.event_loop.clone_ref(py);
            self.handle.spawn(async move {
                let out = exchange(http, req, max).await;
                complete_naive(fut, event_loop, out);
            });
        }
    }
}

#[pymethods]
impl Client {
    #[new]
    #[pyo3(signature = (event_loop, bridge="batched", submit="direct", pool_size=64, max_body=64*1024*1024, own_pool=None, null_body=None))]
    fn new(
        event_loop: Py<PyAny>,
        bridge: &str,
        submit: &str,
        pool_size: usize,
        max_body: usize,
        own_pool: Option<String>,
        null_body: Option<Vec<u8>>,
    ) -> PyResult<Self> {
        let batched = match bridge {
            "batched" => true,
            "naive" => false,
            _ => return Err(PyValueError::new_err("bridge: 'naive' or 'batched'")),
        };
        let batch_submit = match submit {
            "batched" => true,
            "direct" => false,
            _ => return Err(PyValueError::new_err("submit: 'direct' or 'batched'")),
        };
        let efd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if efd < 0 {
            return Err(PyConnectionError::new_err("eventfd failed"));
        }
        let (tx, rx) = mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("hyperproto-io".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                let tid = unsafe { libc::syscall(libc::SYS_gettid) } as i32;
                tx.send((rt.handle().clone(), tid)).unwrap();
                let _ = rt.block_on(stop_rx);
            })
            .map_err(|e| PyConnectionError::new_err(e.to_string()))?;
        let (handle, tid) = rx.recv().map_err(|e| PyConnectionError::new_err(e.to_string()))?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let http = {
            let _guard = handle.enter();
            HClient::builder(TokioExecutor::new())
                .pool_max_idle_per_host(pool_size)
                .pool_idle_timeout(Duration::from_secs(20))
                .pool_timer(TokioTimer::new())
                .build(connector)
        };
        Ok(Client {
            handle,
            http,
            own: own_pool.map(|addr| Arc::new(OwnPool { addr, idle: Mutex::new(Vec::new()) })),
            null_body: null_body.map(Bytes::from),
            batched,
            shared: Arc::new(Shared { queue: Mutex::new(Vec::new()), efd }),
            pending: Mutex::new(HashMap::new()),
            outbox: Mutex::new(Vec::new()),
            batch_submit,
            next_id: AtomicU64::new(1),
            event_loop,
            tid,
            max_body,
            stop: Mutex::new(Some(stop_tx)),
        })
    }

    /// POST `body` to origin + path; an asyncio.Future of (status, headers dict, body bytes).
    fn post(
        &self,
        py: Python<'_>,
        origin: &str,
        path: &str,
        headers: Vec<(String, String)>,
        body: &[u8],
    ) -> PyResult<PyObject> {
        let mut req = Request::new(Full::new(Bytes::copy_from_slice(body)));
        *req.method_mut() = Method::POST;
        if let Some(pool) = &self.own {
            // own pool (bound to one origin): origin-form target, Host set here
            *req.uri_mut() = path.parse().map_err(|e| PyValueError::new_err(format!("{e}")))?;
            let host = HeaderValue::from_str(&pool.addr).map_err(|e| PyValueError::new_err(e.to_string()))?;
            req.headers_mut().insert(hyper::header::HOST, host);
        } else {
            let uri: Uri = format!("{origin}{path}").parse().map_err(|e| PyValueError::new_err(format!("{e}")))?;
            *req.uri_mut() = uri;
        }
        let map = req.headers_mut();
        for (k, v) in headers {
            let name = HeaderName::from_bytes(k.as_bytes()).map_err(|e| PyValueError::new_err(e.to_string()))?;
            let value = HeaderValue::from_str(&v).map_err(|e| PyValueError::new_err(e.to_string()))?;
            map.append(name, value);
        }
        let fut = self.event_loop.call_method0(py, intern!(py, "create_future"))?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let keep = if self.batched {
            self.pending.lock().unwrap().insert(id, fut.clone_ref(py));
            None
        } else {
            Some(fut.clone_ref(py))
        };
        if self.batch_submit {
            let mut outbox = self.outbox.lock().unwrap();
            outbox.push((id, req, keep));
            // the caller schedules flush() once per loop iteration (see bench_client.py)
        } else {
            self.spawn(py, id, req, keep);
        }
        Ok(fut)
    }

    /// Hand every queued submission to the tokio thread: one native call, one spawn each (the
    /// driver is unparked at most once while it sleeps). Returns how many.
    fn flush(&self, py: Python<'_>) -> usize {
        let items = std::mem::take(&mut *self.outbox.lock().unwrap());
        let n = items.len();
        if n == 0 {
            return 0;
        }
        let http = self.transport();
        let max = self.max_body;
        let shared = self.shared.clone();
        if self.batched {
            // one spawned task that spawns the rest from inside the runtime (no cross-thread wakes)
            let reqs: Vec<(u64, Request<Full<Bytes>>)> = items.into_iter().map(|(id, r, _)| (id, r)).collect();
            self.handle.spawn(async move {
                for (id, req) in reqs {
                    let http = http.clone();
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        let out = exchange(http, req, max).await;
                        let was_empty = {
                            let mut q = shared.queue.lock().unwrap();
                            let was_empty = q.is_empty();
                            q.push((id, out));
                            was_empty
                        };
                        if was_empty {
                            let one: u64 = 1;
                            unsafe { libc::write(shared.efd, &one as *const u64 as *const libc::c_void, 8) };
                        }
                    });
                }
            });
        } else {
            for (id, req, fut) in items {
                self.spawn(py, id, req, fut);
            }
        }
        n
    }

    /// Batched bridge: set the result of every completed request. Called from loop.add_reader.
    fn drain(&self, py: Python<'_>) -> PyResult<usize> {
        let mut buf: u64 = 0;
        unsafe { libc::read(self.shared.efd, &mut buf as *mut u64 as *mut libc::c_void, 8) };
        let items = std::mem::take(&mut *self.shared.queue.lock().unwrap());
        let n = items.len();
        let mut pending = self.pending.lock().unwrap();
        for (id, out) in items {
            let Some(fut) = pending.remove(&id) else { continue };
            let fut = fut.bind(py);
            if fut.call_method0(intern!(py, "done"))?.is_truthy()? {
                continue; // cancelled meanwhile
            }
            match to_py(py, out) {
                Ok(v) => fut.call_method1(intern!(py, "set_result"), (v,))?,
                Err(e) => fut.call_method1(intern!(py, "set_exception"), (e,))?,
            };
        }
        Ok(n)
    }

    /// No Python in the loop: `conc` tokio tasks post the same request back to back for
    /// `seconds` on the I/O thread (the caller blocks, GIL released). Returns the number of
    /// completed requests: the client's cost without any bridge.
    fn bench_native(
        &self,
        py: Python<'_>,
        conc: usize,
        seconds: f64,
        origin: String,
        path: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    ) -> PyResult<u64> {
        let mut hs = Vec::new();
        for (k, v) in headers {
            hs.push((
                HeaderName::from_bytes(k.as_bytes()).map_err(|e| PyValueError::new_err(e.to_string()))?,
                HeaderValue::from_str(&v).map_err(|e| PyValueError::new_err(e.to_string()))?,
            ));
        }
        let uri: Uri = match &self.own {
            Some(_) => path.parse(),
            None => format!("{origin}{path}").parse(),
        }
        .map_err(|e| PyValueError::new_err(format!("{e}")))?;
        let host = self.own.as_ref().map(|p| HeaderValue::from_str(&p.addr).unwrap());
        let body = Bytes::from(body);
        let transport = self.transport();
        let max = self.max_body;
        let (tx, rx) = mpsc::channel();
        self.handle.spawn(async move {
            let count = Arc::new(AtomicU64::new(0));
            let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(seconds);
            let mut tasks = Vec::new();
            for _ in 0..conc {
                let (count, transport, uri, hs, host, body) =
                    (count.clone(), transport.clone(), uri.clone(), hs.clone(), host.clone(), body.clone());
                tasks.push(tokio::spawn(async move {
                    while tokio::time::Instant::now() < deadline {
                        let mut req = Request::new(Full::new(body.clone()));
                        *req.method_mut() = Method::POST;
                        *req.uri_mut() = uri.clone();
                        let map = req.headers_mut();
                        if let Some(h) = &host {
                            map.insert(hyper::header::HOST, h.clone());
                        }
                        for (k, v) in &hs {
                            map.append(k.clone(), v.clone());
                        }
                        if let Outcome::Ok { .. } = exchange(transport.clone(), req, max).await {
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }));
            }
            for t in tasks {
                let _ = t.await;
            }
            let _ = tx.send(count.load(Ordering::Relaxed));
        });
        py.allow_threads(move || rx.recv()).map_err(|e| PyConnectionError::new_err(e.to_string()))
    }

    #[getter]
    fn fd(&self) -> i32 {
        self.shared.efd
    }

    #[getter]
    fn tid(&self) -> i32 {
        self.tid
    }

    fn close(&self) {
        if let Some(stop) = self.stop.lock().unwrap().take() {
            let _ = stop.send(());
        }
    }
}

#[pymodule]
fn hyperproto(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Client>()?;
    Ok(())
}
