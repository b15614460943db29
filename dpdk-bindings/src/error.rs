//! The crate's error type: which DPDK call failed, with its return code /
//! `rte_errno` and DPDK's own text for it. Owns nothing else.

use std::ffi::CStr;

use crate::sys;

/// An error from the DPDK wrapper.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DpdkError {
    /// `Eal::init` was called a second time. DPDK can initialise its EAL once
    /// per process (even after `rte_eal_cleanup`).
    #[error(
        "rte_eal_init was already called in this process: DPDK allows one EAL per process \
         (run each EAL instance in its own process)"
    )]
    AlreadyInitialised,
    /// An operation that needs the EAL ran without a live [`crate::Eal`].
    #[error("{what} needs the DPDK EAL: call Eal::init first and keep the Eal handle alive")]
    NotInitialised {
        /// The operation that was attempted.
        what: &'static str,
    },
    /// A DPDK call failed.
    #[error("{call}: {message} ({code})")]
    Call {
        /// The call and its main arguments, e.g. `rte_eth_dev_configure(port 0)`.
        call: String,
        /// The negative errno DPDK returned (or `-rte_errno`).
        code: i32,
        /// `rte_strerror` of the code.
        message: String,
    },
    /// An argument was rejected before calling DPDK.
    #[error("{call}: {reason}")]
    InvalidArgument {
        /// The operation and its main arguments.
        call: String,
        /// Why the argument is wrong and what is accepted.
        reason: String,
    },
    /// The port is already owned by another `EthPort` in this process.
    #[error("port {port} is already configured by another EthPort in this process")]
    PortInUse {
        /// DPDK port id.
        port: u16,
    },
    /// The queue is already claimed by another live `PortQueue`.
    #[error("queue {queue} of port {port} is already claimed by another PortQueue")]
    QueueInUse {
        /// DPDK port id.
        port: u16,
        /// Queue index.
        queue: u16,
    },
    /// A function launched on a worker lcore panicked (its message went to
    /// stderr).
    #[error("the work launched on lcore {lcore} panicked")]
    LcorePanicked {
        /// The lcore.
        lcore: u32,
    },
}

impl DpdkError {
    /// An error for a call that returned a negative errno (`-EINVAL`, ...).
    /// A positive code is taken as the errno itself.
    pub(crate) fn from_code(call: impl Into<String>, code: i32) -> Self {
        let code = -code.abs();
        Self::Call {
            call: call.into(),
            code,
            message: strerror(-code),
        }
    }

    /// An error for a call that returned `NULL`/`-1` and set `rte_errno`.
    pub(crate) fn from_rte_errno(call: impl Into<String>) -> Self {
        // SAFETY: shim_rte_errno only reads DPDK's thread-local rte_errno.
        let errno = unsafe { sys::shim_rte_errno() };
        Self::from_code(call, errno)
    }

    /// The negative errno of a failed DPDK call, `None` for other errors.
    pub fn code(&self) -> Option<i32> {
        match self {
            Self::Call { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// `rte_strerror(errnum)` copied into a `String`.
fn strerror(errnum: i32) -> String {
    // SAFETY: rte_strerror accepts any int and returns a pointer to a
    // NUL-terminated string (a static table entry or a thread-local buffer)
    // that stays valid until the next rte_strerror call on this thread; it is
    // copied out before returning.
    unsafe {
        let text = sys::rte_strerror(errnum);
        if text.is_null() {
            return format!("errno {errnum}");
        }
        CStr::from_ptr(text).to_string_lossy().into_owned()
    }
}
