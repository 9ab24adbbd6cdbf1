//! `meshpy._core`: the Python binding of the proxy core, kept thin — parse, call, map errors.
//!
//! Exports (and nothing else): `Proxy`, `generate_csr`, `certificate_info`,
//! `regex_problem`, `check_bootstrap`, `check_snapshot`, `explain`, `config_schema`, `MeshpyError`, `ConfigError`, `BindError`, `StateError`, `IdentityError`,
//! `__version__`. Rust errors become Python exceptions in exactly one function,
//! `to_py_err`. Every call that may wait releases the GIL; the proxy's own
//! threads never take it.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use proxy_core::CertificateInfo;
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// The proxy's own memory comes from jemalloc, whose background thread gives pages
/// freed after a burst (a thousand slow connections, say) back to the system within
/// seconds; glibc's malloc keeps them. Python's objects still use Python's allocator.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

create_exception!(
    _core,
    MeshpyError,
    PyException,
    "Base class of every meshpy error, the data plane's and the rest (meshpy.errors)."
);
create_exception!(
    _core,
    ConfigError,
    MeshpyError,
    "An invalid bootstrap or snapshot; `path` names the field, `message` says what is wrong."
);
create_exception!(
    _core,
    BindError,
    MeshpyError,
    "A listener could not bind its address."
);
create_exception!(
    _core,
    IdentityError,
    MeshpyError,
    "set_identity refused a certificate chain, key or roots; the previous identity stays."
);
create_exception!(
    _core,
    StateError,
    MeshpyError,
    "A call that does not fit the proxy's state, such as start() twice."
);

/// Maps a proxy-core error to its Python exception; the only place that does.
fn to_py_err(py: Python<'_>, err: proxy_core::Error) -> PyErr {
    match err {
        proxy_core::Error::Config(config) => config_error(py, &config),
        err @ proxy_core::Error::Bind { .. } => BindError::new_err(err.to_string()),
        err @ proxy_core::Error::Identity(_) => IdentityError::new_err(err.to_string()),
        err @ proxy_core::Error::State(_) => StateError::new_err(err.to_string()),
        err @ (proxy_core::Error::Runtime(_) | proxy_core::Error::AccessLog(_)) => {
            MeshpyError::new_err(err.to_string())
        }
    }
}

/// A `ConfigError` with the `path` and `message` of `config`.
fn config_error(py: Python<'_>, config: &proxy_core::ConfigError) -> PyErr {
    let py_err = ConfigError::new_err(config.to_string());
    let value = py_err.value(py);
    if value.setattr("path", &config.path).is_err()
        || value.setattr("message", &config.message).is_err()
    {
        return PyValueError::new_err(config.to_string());
    }
    py_err
}

/// A proxy running on its own threads. Construct with a bootstrap JSON document.
#[pyclass(frozen, module = "meshpy._core")]
struct Proxy {
    inner: proxy_core::Proxy,
}

#[pymethods]
impl Proxy {
    #[new]
    fn new(py: Python<'_>, bootstrap_json: &str) -> PyResult<Self> {
        let inner = proxy_core::Proxy::new(bootstrap_json).map_err(|e| to_py_err(py, e))?;
        Ok(Self { inner })
    }

    /// Binds the admin listener and all listeners; returns {name: "ip:port"}.
    fn start(&self, py: Python<'_>) -> PyResult<BTreeMap<String, String>> {
        let bound = py
            .detach(|| self.inner.start())
            .map_err(|e| to_py_err(py, e))?;
        Ok(address_map(bound))
    }

    /// Validates and applies a snapshot JSON document; returns the version served.
    fn apply(&self, py: Python<'_>, snapshot_json: &str) -> PyResult<u64> {
        py.detach(|| self.inner.apply(snapshot_json))
            .map_err(|e| to_py_err(py, e))
    }

    /// Bound addresses: {name: "ip:port"}, `admin` included.
    fn addresses(&self, py: Python<'_>) -> BTreeMap<String, String> {
        address_map(py.detach(|| self.inner.addresses()))
    }

    /// Stats: version, readiness, listeners and clusters, as a dict.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let text = self.inner.stats().to_string();
        py.import("json")?.call_method1("loads", (text,))
    }

    /// Prometheus text of the proxy's metrics.
    fn metrics(&self) -> String {
        self.inner.metrics_text()
    }

    /// True once started with a snapshot (and an identity if it uses tls), until shutdown.
    fn ready(&self) -> bool {
        self.inner.is_ready()
    }

    /// Why the proxy is not ready, or None when it is.
    fn not_ready_reason(&self) -> Option<&'static str> {
        self.inner.not_ready_reason()
    }

    /// Vets and puts in force the proxy's mTLS identity (PEM chain leaf first,
    /// PKCS#8 or SEC1 key, trust roots); returns what the certificate says.
    fn set_identity<'py>(
        &self,
        py: Python<'py>,
        chain_pem: &str,
        key_pem: &str,
        roots_pem: &str,
    ) -> PyResult<Bound<'py, PyDict>> {
        let info = py
            .detach(|| self.inner.set_identity(chain_pem, key_pem, roots_pem))
            .map_err(|e| to_py_err(py, e))?;
        info_dict(py, &info)
    }

    /// The identity in force, as set_identity returned it, or None.
    fn identity<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        self.inner
            .identity()
            .map(|info| info_dict(py, &info))
            .transpose()
    }

    /// Stops accepting, drains in-flight requests for up to `grace_s` seconds, then closes.
    fn shutdown(&self, py: Python<'_>, grace_s: f64) -> PyResult<()> {
        let grace = Duration::try_from_secs_f64(grace_s).map_err(|_| {
            PyValueError::new_err("grace_s must be a non-negative number of seconds")
        })?;
        py.detach(|| self.inner.shutdown(grace));
        Ok(())
    }
}

/// A fresh ECDSA P-256 key and a CSR for `spiffe_id`: `(key_pem, csr_pem)`.
#[pyfunction]
fn generate_csr(py: Python<'_>, spiffe_id: &str) -> PyResult<(String, String)> {
    py.detach(|| proxy_core::generate_csr(spiffe_id))
        .map_err(|e| PyValueError::new_err(e.to_string()))
}

/// Why the data plane refuses `pattern` as a RegularExpression match, or `None`
/// when it compiles: the control plane validates routes with the data plane's rules.
#[pyfunction]
fn regex_problem(pattern: &str) -> Option<String> {
    proxy_core::config::compile_regex(pattern).err()
}

/// Checks a bootstrap document as `Proxy(...)` would, without starting anything.
#[pyfunction]
fn check_bootstrap(py: Python<'_>, bootstrap_json: &str) -> PyResult<()> {
    proxy_core::config::parse_bootstrap(bootstrap_json)
        .map(drop)
        .map_err(|e| config_error(py, &e))
}

/// Checks a snapshot document as `Proxy.apply` would, without applying it.
#[pyfunction]
fn check_snapshot(py: Python<'_>, snapshot_json: &str) -> PyResult<()> {
    proxy_core::config::parse_snapshot(snapshot_json)
        .map(drop)
        .map_err(|e| config_error(py, &e))
}

/// What the listener named `listener` of a snapshot would do with a request, and why, as
/// a dict (`proxy_core::policy::explain`): the proxy's own planning, run on a question. A
/// snapshot the proxy would refuse raises `ConfigError`, a question that is no request
/// `ValueError`. The GIL is released meanwhile: a mesh's snapshot takes a while to compile.
#[pyfunction]
#[pyo3(signature = (snapshot_json, listener, *, host, method, target, headers, identity))]
#[allow(clippy::too_many_arguments)]
fn explain<'py>(
    py: Python<'py>,
    snapshot_json: &str,
    listener: &str,
    host: &str,
    method: &str,
    target: &str,
    headers: Vec<(String, String)>,
    identity: Option<&str>,
) -> PyResult<Bound<'py, PyAny>> {
    let snapshot = py
        .detach(|| proxy_core::config::parse_snapshot(snapshot_json))
        .map_err(|e| config_error(py, &e))?;
    let question = proxy_core::policy::explain::Question {
        host,
        method,
        target,
        headers: &headers,
        identity,
    };
    let answer = py
        .detach(|| proxy_core::policy::explain::explain(&snapshot, listener, &question))
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    py.import("json")?
        .call_method1("loads", (answer.to_string(),))
}

/// The JSON Schema of a proxy config file, as indented JSON.
#[pyfunction]
fn config_schema() -> PyResult<String> {
    serde_json::to_string_pretty(&proxy_core::config::schema::config_file_schema())
        .map_err(|e| PyValueError::new_err(e.to_string()))
}

/// What the first certificate of a PEM document says.
#[pyfunction]
fn certificate_info<'py>(py: Python<'py>, pem: &str) -> PyResult<Bound<'py, PyDict>> {
    let info =
        proxy_core::certificate_info(pem).map_err(|e| PyValueError::new_err(e.to_string()))?;
    info_dict(py, &info)
}

/// `{"identity", "not_before", "not_after", "serial", "issuer", "subject", "is_ca"}`; times are Unix seconds.
fn info_dict<'py>(py: Python<'py>, info: &CertificateInfo) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item("identity", info.identity.as_ref().map(|id| id.as_str()))?;
    dict.set_item("not_before", info.not_before as f64)?;
    dict.set_item("not_after", info.not_after as f64)?;
    dict.set_item("serial", &info.serial)?;
    dict.set_item("issuer", &info.issuer)?;
    dict.set_item("subject", &info.subject)?;
    dict.set_item("is_ca", info.is_ca)?;
    Ok(dict)
}

fn address_map(bound: Vec<(String, std::net::SocketAddr)>) -> BTreeMap<String, String> {
    bound
        .into_iter()
        .map(|(name, addr)| (name, addr.to_string()))
        .collect()
}

/// Logs go to stderr, filtered by `MESHPY_LOG` (e.g. `info`, `proxy_core=debug`); warnings by default.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MESHPY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    init_logging();
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<Proxy>()?;
    m.add_function(wrap_pyfunction!(generate_csr, m)?)?;
    m.add_function(wrap_pyfunction!(certificate_info, m)?)?;
    m.add_function(wrap_pyfunction!(regex_problem, m)?)?;
    m.add_function(wrap_pyfunction!(check_bootstrap, m)?)?;
    m.add_function(wrap_pyfunction!(check_snapshot, m)?)?;
    m.add_function(wrap_pyfunction!(explain, m)?)?;
    m.add_function(wrap_pyfunction!(config_schema, m)?)?;
    m.add("MeshpyError", py.get_type::<MeshpyError>())?;
    m.add("ConfigError", py.get_type::<ConfigError>())?;
    m.add("BindError", py.get_type::<BindError>())?;
    m.add("StateError", py.get_type::<StateError>())?;
    m.add("IdentityError", py.get_type::<IdentityError>())?;
    Ok(())
}
