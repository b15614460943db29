//! Build script: finds the system DPDK with pkg-config, compiles the C shim
//! (`csrc/shim.c`) for DPDK's `static inline` functions and macros, and runs
//! bindgen over `csrc/wrapper.h` with an allowlist of the functions, types and
//! constants the safe wrapper uses.

use std::env;
use std::path::PathBuf;

/// Functions bindgen emits (everything else in the DPDK headers is skipped).
const FUNCTIONS: &[&str] = &[
    // EAL, lcores, errors.
    "rte_eal_init",
    "rte_eal_cleanup",
    "rte_eal_remote_launch",
    "rte_eal_wait_lcore",
    "rte_lcore_count",
    "rte_get_main_lcore",
    "rte_lcore_is_enabled",
    "rte_socket_id",
    "rte_strerror",
    // Mempool / pktmbuf pool.
    "rte_pktmbuf_pool_create",
    "rte_mempool_free",
    "rte_mempool_in_use_count",
    "rte_mempool_avail_count",
    // Ethdev control path.
    "rte_eth_dev_count_avail",
    "rte_eth_dev_is_valid_port",
    "rte_eth_dev_get_port_by_name",
    "rte_eth_dev_socket_id",
    "rte_eth_dev_info_get",
    "rte_eth_dev_configure",
    "rte_eth_dev_adjust_nb_rx_tx_desc",
    "rte_eth_rx_queue_setup",
    "rte_eth_tx_queue_setup",
    "rte_eth_dev_start",
    "rte_eth_dev_stop",
    "rte_eth_dev_close",
    "rte_eth_link_get_nowait",
    "rte_eth_stats_get",
    "rte_eth_stats_reset",
    "rte_eth_xstats_get",
    "rte_eth_xstats_get_names",
    "rte_eth_promiscuous_enable",
    "rte_eth_promiscuous_disable",
    "rte_eth_macaddr_get",
    "rte_eth_dev_rss_hash_conf_get",
    "rte_eth_dev_rss_reta_update",
    // Rings.
    "rte_ring_create",
    "rte_ring_free",
    // The C shim (csrc/shim.h).
    "shim_.*",
];

/// Constants bindgen emits.
const VARS: &[&str] = &[
    "RTE_MBUF_DEFAULT_BUF_SIZE",
    "RTE_PKTMBUF_HEADROOM",
    "RTE_MAX_ETHPORTS",
    "RTE_MAX_LCORE",
    "RTE_MEMPOOL_NAMESIZE",
    "RTE_RING_NAMESIZE",
    "RTE_ETH_XSTATS_NAME_SIZE",
    "RTE_ETH_NAME_MAX_LEN",
    "RTE_ETH_RSS_.*",
    "RTE_ETH_LINK_.*",
    "RTE_ETH_SPEED_NUM_.*",
    "RING_F_.*",
    "LCORE_ID_ANY",
    "SOCKET_ID_ANY",
];

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let csrc = manifest_dir.join("csrc");
    for file in ["wrapper.h", "shim.h", "shim.c"] {
        println!("cargo:rerun-if-changed={}", csrc.join(file).display());
    }

    let dpdk = match pkg_config::Config::new()
        .atleast_version("22.11")
        .probe("libdpdk")
    {
        Ok(lib) => lib,
        Err(err) => panic!(
            "libdpdk not found: install libdpdk-dev (Debian 12: apt-get install libdpdk-dev) \
             or build without the dpdk feature\n(pkg-config said: {err})"
        ),
    };

    // `-march=corei7` is required by gcc for DPDK's SSE4.2 inline functions
    // (rte_memcpy.h); `-include rte_config.h` mirrors `pkg-config --cflags`.
    let mut shim = cc::Build::new();
    shim.file(csrc.join("shim.c"))
        .include(&csrc)
        .flag("-march=corei7")
        .flag("-include")
        .flag("rte_config.h")
        .warnings(true);
    for path in &dpdk.include_paths {
        shim.include(path);
    }
    shim.compile("shoal_dpdk_shim");

    let mut clang_args: Vec<String> = dpdk
        .include_paths
        .iter()
        .map(|p| format!("-I{}", p.display()))
        .collect();
    clang_args.push(format!("-I{}", csrc.display()));
    clang_args.extend(["-include".to_owned(), "rte_config.h".to_owned()]);

    let mut builder = bindgen::Builder::default()
        .header(csrc.join("wrapper.h").display().to_string())
        .clang_args(&clang_args)
        // RTE_ETH_RSS_* are `RTE_BIT64(n)` macros: let clang evaluate them.
        .clang_macro_fallback()
        .default_enum_style(bindgen::EnumVariation::Consts)
        .prepend_enum_name(false)
        .layout_tests(false)
        // DPDK's doxygen would become (failing) doc-tests of the private sys module.
        .generate_comments(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
    for f in FUNCTIONS {
        builder = builder.allowlist_function(f);
    }
    for v in VARS {
        builder = builder.allowlist_var(v);
    }
    builder = builder
        .allowlist_type("rte_eth_rx_mq_mode")
        .allowlist_type("rte_eth_tx_mq_mode");
    let bindings = builder.generate().unwrap_or_else(|err| {
        panic!(
            "bindgen failed on {}: {err}",
            csrc.join("wrapper.h").display()
        )
    });
    bindings
        .write_to_file(out_dir.join("dpdk.rs"))
        .unwrap_or_else(|err| panic!("cannot write {}: {err}", out_dir.join("dpdk.rs").display()));
}
