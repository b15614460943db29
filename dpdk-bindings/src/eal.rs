//! The DPDK Environment Abstraction Layer: one-time initialisation
//! ([`Eal::init`]), the argument builder ([`EalArgs`]), cleanup when the last
//! handle goes away, and per-thread facts (lcore id, socket, TSC).
//!
//! This module owns the process-wide EAL state; it does not touch ports,
//! pools or rings beyond keeping the EAL alive for them.

use std::ffi::{c_char, CString};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use crate::error::DpdkError;
use crate::sys;

/// Set by the first `Eal::init` call, successful or not: DPDK cannot run
/// `rte_eal_init` twice in one process.
static INIT_CALLED: AtomicBool = AtomicBool::new(false);

/// The live EAL, if any (a weak reference: the handles own it).
static CURRENT: Mutex<Weak<EalInner>> = Mutex::new(Weak::new());

/// Pools that were not freed because buffers were still out (see
/// [`leaked_pools`]). While non-zero, `rte_eal_cleanup` is skipped.
pub(crate) static LEAKED_POOLS: AtomicUsize = AtomicUsize::new(0);

/// Program name handed to `rte_eal_init` as `argv[0]`.
const PROGRAM_NAME: &str = "shoal";

/// Handle to the initialised EAL.
///
/// Cheap to clone. Pools and rings hold a clone, so `rte_eal_cleanup` runs
/// only when the last handle (and thus the last DPDK object) is gone.
/// `rte_eal_init` can run once per process: after cleanup the EAL cannot be
/// initialised again.
#[derive(Debug, Clone)]
pub struct Eal {
    inner: Arc<EalInner>,
}

#[derive(Debug)]
struct EalInner {
    main_lcore: u32,
}

impl Drop for EalInner {
    fn drop(&mut self) {
        if LEAKED_POOLS.load(Ordering::Acquire) == 0 {
            // SAFETY: this is the last handle: every Mempool and Ring holds an
            // Eal clone, and every Mbuf/EthPort borrows a Mempool, so no
            // wrapper object that points into DPDK memory is alive. Leaked
            // pools (which might still be referenced) skip this branch.
            // rte_eal_cleanup runs once: EalInner is created once per process.
            unsafe {
                sys::rte_eal_cleanup();
            }
        }
    }
}

impl Eal {
    /// Initialises the EAL with `args` (the EAL arguments *without* a program
    /// name, e.g. from [`EalArgs::build`]).
    ///
    /// The calling thread becomes the main lcore (EAL pins it to that lcore's
    /// CPU). A second call in the same process returns
    /// [`DpdkError::AlreadyInitialised`].
    pub fn init(args: &[String]) -> Result<Eal, DpdkError> {
        let call = || format!("rte_eal_init({})", args.join(" "));
        if INIT_CALLED.swap(true, Ordering::AcqRel) {
            return Err(DpdkError::AlreadyInitialised);
        }
        let mut argv: Vec<*mut c_char> = Vec::with_capacity(args.len() + 2);
        for arg in std::iter::once(PROGRAM_NAME).chain(args.iter().map(String::as_str)) {
            let arg = CString::new(arg).map_err(|_| DpdkError::InvalidArgument {
                call: call(),
                reason: format!("argument {arg:?} contains a NUL byte"),
            })?;
            argv.push(arg.into_raw());
        }
        let argc = i32::try_from(argv.len()).map_err(|_| DpdkError::InvalidArgument {
            call: call(),
            reason: format!("{} arguments is more than an int can count", argv.len()),
        })?;
        argv.push(std::ptr::null_mut());
        // EAL may keep pointers into argv (and getopt permutes it): leak it.
        let argv: &'static mut [*mut c_char] = argv.leak();
        // SAFETY: argv holds argc valid, NUL-terminated, leaked (so never
        // freed) C strings followed by a NULL; INIT_CALLED guarantees this is
        // the only rte_eal_init call in the process.
        let rc = unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        if rc < 0 {
            return Err(DpdkError::from_rte_errno(call()));
        }
        // SAFETY: the EAL is initialised; rte_get_main_lcore reads its config.
        let main_lcore = unsafe { sys::rte_get_main_lcore() };
        let inner = Arc::new(EalInner { main_lcore });
        *CURRENT.lock().unwrap_or_else(PoisonError::into_inner) = Arc::downgrade(&inner);
        Ok(Eal { inner })
    }

    /// A handle to the live EAL, or [`DpdkError::NotInitialised`] naming
    /// `what` needed it.
    pub(crate) fn current(what: &'static str) -> Result<Eal, DpdkError> {
        CURRENT
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .upgrade()
            .map(|inner| Eal { inner })
            .ok_or(DpdkError::NotInitialised { what })
    }

    /// The lcore id of the main lcore (the thread that called [`Eal::init`]).
    pub fn main_lcore(&self) -> u32 {
        self.inner.main_lcore
    }

    /// Number of lcores the EAL runs (the `-l` list).
    pub fn lcore_count(&self) -> u32 {
        // SAFETY: the EAL is initialised (self is a live handle);
        // rte_lcore_count reads its configuration.
        unsafe { sys::rte_lcore_count() }
    }
}

impl Eal {
    /// Runs `work(i)` on the EAL thread of `lcores[i]` for every `i` (worker
    /// lcores: enabled by `-l`, not the main lcore) and `main()` on the
    /// calling thread (the main lcore), and returns `main`'s result once
    /// every launched lcore has returned, like [`std::thread::scope`].
    ///
    /// A panic in `work` is caught on its lcore and reported as
    /// [`DpdkError::LcorePanicked`] (after every lcore returned); a panic in
    /// `main` unwinds only after the lcores returned, so nothing `work`
    /// borrows is freed while it runs. `main` must make the workers return
    /// (a stop flag they poll): this call waits for them.
    pub fn run_on_lcores<F, M, R>(&self, lcores: &[u32], work: F, main: M) -> Result<R, DpdkError>
    where
        F: Fn(usize) + Sync,
        M: FnOnce() -> R,
    {
        for &lcore in lcores {
            // SAFETY: the EAL is initialised (self); the call reads its config.
            let enabled = unsafe { sys::rte_lcore_is_enabled(lcore) } != 0;
            if !enabled || lcore == self.main_lcore() {
                return Err(DpdkError::InvalidArgument {
                    call: format!("Eal::run_on_lcores(lcore {lcore})"),
                    reason: format!(
                        "lcore {lcore} is {} (worker lcores must be in -l and not the main lcore {})",
                        if enabled { "the main lcore" } else { "not enabled" },
                        self.main_lcore()
                    ),
                });
            }
        }
        let jobs: Vec<Job<'_>> = (0..lcores.len())
            .map(|index| Job {
                work: &work,
                index,
                panicked: AtomicBool::new(false),
            })
            .collect();
        // Waits for every launched lcore when dropped, also while unwinding.
        let mut waiter = Waiter {
            launched: Vec::with_capacity(lcores.len()),
        };
        for (job, &lcore) in jobs.iter().zip(lcores) {
            let arg = std::ptr::from_ref(job)
                .cast_mut()
                .cast::<std::ffi::c_void>();
            // SAFETY: `trampoline` only reads the Job through `arg`; the Job
            // lives in `jobs`, which outlives `waiter` (declared after it, so
            // dropped before it), and `waiter` waits for this lcore before
            // that drop. The lcore is an enabled worker lcore (checked above).
            let rc = unsafe { sys::rte_eal_remote_launch(Some(trampoline), arg, lcore) };
            if rc != 0 {
                drop(waiter);
                return Err(DpdkError::from_code(
                    format!("rte_eal_remote_launch(lcore {lcore})"),
                    -rc,
                ));
            }
            waiter.launched.push(lcore);
        }
        let result = main();
        drop(waiter);
        if let Some(i) = jobs.iter().position(|j| j.panicked.load(Ordering::Acquire)) {
            return Err(DpdkError::LcorePanicked { lcore: lcores[i] });
        }
        Ok(result)
    }
}

/// One lcore's share of [`Eal::run_on_lcores`].
struct Job<'a> {
    work: &'a (dyn Fn(usize) + Sync),
    index: usize,
    panicked: AtomicBool,
}

/// Waits for launched lcores on drop.
struct Waiter {
    launched: Vec<u32>,
}

impl Drop for Waiter {
    fn drop(&mut self) {
        for &lcore in &self.launched {
            // SAFETY: the lcore was launched by this process and the EAL is
            // alive (the Eal handle outlives run_on_lcores); waiting has no
            // other precondition.
            unsafe {
                sys::rte_eal_wait_lcore(lcore);
            }
        }
    }
}

/// The C entry point of a launched lcore: runs its [`Job`].
extern "C" fn trampoline(arg: *mut std::ffi::c_void) -> std::ffi::c_int {
    // SAFETY: `arg` is the address of a Job that stays alive until this
    // lcore has been waited for (see run_on_lcores); Job is Sync (its closure
    // is Sync and the flag atomic), so a shared reference from this thread is
    // sound.
    let job = unsafe { &*arg.cast::<Job<'_>>() };
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (job.work)(job.index)));
    if ran.is_err() {
        job.panicked.store(true, Ordering::Release);
        return -1;
    }
    0
}

/// Number of pools that were leaked instead of freed because buffers from
/// them were still outstanding when the `Mempool` was dropped (only possible
/// after `mem::forget` of an `Mbuf` or `EthPort`). While non-zero,
/// `rte_eal_cleanup` is skipped so that memory stays valid.
pub fn leaked_pools() -> usize {
    LEAKED_POOLS.load(Ordering::Acquire)
}

/// The calling thread's lcore id, `None` on threads that are not EAL lcores.
pub fn lcore_id() -> Option<u32> {
    // SAFETY: shim_rte_lcore_id reads DPDK's thread-local lcore id, which is
    // LCORE_ID_ANY on threads the EAL does not manage (also before init).
    let id = unsafe { sys::shim_rte_lcore_id() };
    (id != sys::LCORE_ID_ANY).then_some(id)
}

/// The NUMA socket of the calling thread, `None` if unknown (non-EAL thread
/// or EAL not initialised).
pub fn socket_id() -> Option<u32> {
    // SAFETY: rte_socket_id reads DPDK's thread-local socket id
    // (SOCKET_ID_ANY until the EAL sets it).
    let id = unsafe { sys::rte_socket_id() };
    (id != sys::SOCKET_ID_ANY as u32).then_some(id)
}

/// The TSC frequency in Hz as calibrated by the EAL (0 before [`Eal::init`]).
pub fn tsc_hz() -> u64 {
    // SAFETY: reads a global the EAL sets once during init (0 before).
    unsafe { sys::shim_rte_get_tsc_hz() }
}

/// The current TSC value (`rdtsc`): a cheap monotonic cycle counter.
pub fn tsc_cycles() -> u64 {
    // SAFETY: rte_get_tsc_cycles executes rdtsc, which has no preconditions.
    unsafe { sys::shim_rte_get_tsc_cycles() }
}

/// Builder for EAL arguments (without the program name).
///
/// ```
/// let args = dpdk_bindings::EalArgs::new()
///     .lcores(&[0])
///     .no_huge(128)
///     .no_pci()
///     .file_prefix("shoal-1")
///     .vdev("net_ring0")
///     .build();
/// assert_eq!(args.join(" "), "-l 0 --no-huge -m 128 --no-pci --file-prefix shoal-1 --vdev net_ring0");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EalArgs {
    lcores: Vec<u32>,
    no_huge_mb: Option<u32>,
    no_pci: bool,
    file_prefix: Option<String>,
    vdevs: Vec<String>,
    extra: Vec<String>,
}

impl EalArgs {
    /// An empty argument list (EAL defaults: all cores, hugepages, PCI scan).
    pub fn new() -> Self {
        Self::default()
    }

    /// `-l a,b,c`: run these lcores (the first one becomes the main lcore
    /// unless `--main-lcore` is given in [`EalArgs::extra`]).
    #[must_use]
    pub fn lcores(mut self, lcores: &[u32]) -> Self {
        self.lcores = lcores.to_vec();
        self
    }

    /// `--no-huge -m <memory_mb>`: run on ordinary pages with this much memory.
    #[must_use]
    pub fn no_huge(mut self, memory_mb: u32) -> Self {
        self.no_huge_mb = Some(memory_mb);
        self
    }

    /// `--no-pci`: do not scan or probe PCI devices (keeps the host's NICs,
    /// e.g. a VM's virtio management interface, away from DPDK).
    #[must_use]
    pub fn no_pci(mut self) -> Self {
        self.no_pci = true;
        self
    }

    /// `--file-prefix <prefix>`: the runtime directory `/var/run/dpdk/<prefix>`;
    /// must be unique among concurrently running DPDK processes.
    #[must_use]
    pub fn file_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.file_prefix = Some(prefix.into());
        self
    }

    /// `--vdev <spec>`: add a virtual device, e.g. `net_ring0` or
    /// `net_af_packet0,iface=veth0`. May be called several times.
    #[must_use]
    pub fn vdev(mut self, spec: impl Into<String>) -> Self {
        self.vdevs.push(spec.into());
        self
    }

    /// Further arguments, appended verbatim after the others.
    #[must_use]
    pub fn extra<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.extra.extend(args.into_iter().map(Into::into));
        self
    }

    /// The argument vector for [`Eal::init`], in the order
    /// `-l`, `--no-huge -m`, `--no-pci`, `--file-prefix`, `--vdev`..., extra.
    pub fn build(&self) -> Vec<String> {
        let mut args = Vec::new();
        if !self.lcores.is_empty() {
            let list: Vec<String> = self.lcores.iter().map(u32::to_string).collect();
            args.extend(["-l".to_owned(), list.join(",")]);
        }
        if let Some(mb) = self.no_huge_mb {
            args.extend(["--no-huge".to_owned(), "-m".to_owned(), mb.to_string()]);
        }
        if self.no_pci {
            args.push("--no-pci".to_owned());
        }
        if let Some(prefix) = &self.file_prefix {
            args.extend(["--file-prefix".to_owned(), prefix.clone()]);
        }
        for vdev in &self.vdevs {
            args.extend(["--vdev".to_owned(), vdev.clone()]);
        }
        args.extend(self.extra.iter().cloned());
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eal_args_full_order() {
        let args = EalArgs::new()
            .extra(["--log-level", "lib.eal:debug"])
            .vdev("net_ring0")
            .vdev("net_null0,size=64")
            .file_prefix("shoal-test-1-x")
            .no_pci()
            .no_huge(128)
            .lcores(&[0, 2, 3])
            .build();
        assert_eq!(
            args,
            [
                "-l",
                "0,2,3",
                "--no-huge",
                "-m",
                "128",
                "--no-pci",
                "--file-prefix",
                "shoal-test-1-x",
                "--vdev",
                "net_ring0",
                "--vdev",
                "net_null0,size=64",
                "--log-level",
                "lib.eal:debug",
            ]
        );
    }

    #[test]
    fn eal_args_empty_and_no_pci_only() {
        assert!(EalArgs::new().build().is_empty());
        assert_eq!(EalArgs::new().no_pci().build(), ["--no-pci"]);
        // no_pci twice still yields a single flag.
        assert_eq!(EalArgs::new().no_pci().no_pci().build(), ["--no-pci"]);
    }

    #[test]
    fn eal_args_lcores_replace_previous_list() {
        let args = EalArgs::new().lcores(&[1, 2]).lcores(&[0]).build();
        assert_eq!(args, ["-l", "0"]);
    }

    #[test]
    fn no_eal_facts_without_init() {
        // The unit-test binary never initialises the EAL.
        assert_eq!(lcore_id(), None);
        assert_eq!(tsc_hz(), 0);
        assert_eq!(
            Eal::current("test").map(|_| ()),
            Err(DpdkError::NotInitialised { what: "test" })
        );
        assert_eq!(leaked_pools(), 0);
        assert_eq!(
            crate::Mempool::new("p", 63, 0, None).map(|_| ()),
            Err(DpdkError::NotInitialised {
                what: "Mempool::new"
            })
        );
        assert_eq!(
            crate::Ring::new("r", 64, None).map(|_| ()),
            Err(DpdkError::NotInitialised { what: "Ring::new" })
        );
        assert_eq!(
            crate::EthPort::by_name("net_ring0"),
            Err(DpdkError::NotInitialised {
                what: "EthPort::by_name"
            })
        );
        assert_eq!(crate::EthPort::count_avail(), 0);
        assert_eq!(
            DpdkError::NotInitialised {
                what: "Mempool::new"
            }
            .to_string(),
            "Mempool::new needs the DPDK EAL: call Eal::init first and keep the Eal handle alive"
        );
    }

    #[test]
    fn error_text_names_call_code_and_strerror() {
        let err = DpdkError::from_code("rte_eth_dev_configure(port 0)", -22);
        assert_eq!(err.code(), Some(-22));
        assert_eq!(
            err.to_string(),
            "rte_eth_dev_configure(port 0): Invalid argument (-22)"
        );
        // A positive errno is normalised to the negative return-code form.
        assert_eq!(
            DpdkError::from_code("x", 12).to_string(),
            "x: Cannot allocate memory (-12)"
        );
    }
}
