//! The synthetic workload: a SPECweb99-shaped file set, Zipf-popular
//! directories, and persistent connections carrying independent requests.
//!
//! File set (SPECweb99's static part): `directories` directories of 36
//! files, four classes of nine files each; file `j` (1..=9) of class `c` is
//! `j × 10^c × 102.4` bytes, so class 0 holds 0.1-0.9 KB, class 1 1-9 KB,
//! class 2 10-90 KB and class 3 100-900 KB (KB = 1024 bytes). A directory
//! holds 4.9 MiB, of which the four class-3 files over 500 KB (2.9 MiB) are
//! never cached: 1.95 MiB per directory can be. A
//! request picks its directory by Zipf(`alpha`) over the directories, its
//! class by SPECweb99's mix (35 / 50 / 14 / 1 %) and its file in the class
//! by SPECweb99's fixed per-file table (file 5 the most requested). The mean
//! transfer is about 14.4 KB; the data set is heavy-tailed: class 3 is 1 % of
//! the requests but a third of the bytes sent and 90 % of the bytes stored.
//!
//! Connections: each carries a geometric number of requests (mean
//! `mean_requests`). By default each is drawn independently of the others:
//! the "random request correlation" of SPECweb99 traces that the seed calls
//! its extreme case (requests of a proxy's clients sharing one connection).
//! With `related` = p > 0, a later request stays in the directory of the
//! request before it with probability p (a page's embedded objects; its
//! class and file drawn afresh): 1 - p is then the share of unrelated
//! requests, 13-48 % in the seed's proxy traces (its Tables 1 and 2).
//!
//! The module owns file ids, sizes and the request stream; it knows nothing
//! of nodes, caches or time.

use super::rng::SplitMix64;

/// Files per directory: four classes of nine.
pub const FILES_PER_DIRECTORY: u32 = 36;
/// Share of requests per class (SPECweb99's static mix).
pub const CLASS_MIX: [f64; 4] = [0.35, 0.50, 0.14, 0.01];
/// Share of a class's requests per file 1..=9 (SPECweb99's table; sums to
/// 0.999, normalised when used).
pub const FILE_MIX: [f64; 9] = [
    0.039, 0.059, 0.088, 0.177, 0.353, 0.118, 0.071, 0.050, 0.044,
];

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorkloadParams {
    /// Number of directories (36 files each).
    pub directories: u32,
    /// Zipf exponent of directory popularity (SPECweb99 uses 1).
    pub alpha: f64,
    /// Mean requests per persistent connection (geometric, at least 1).
    pub mean_requests: f64,
    /// Probability that a request after a connection's first is in the
    /// same directory as the one before it (0: all independent).
    pub related: f64,
}

impl Default for WorkloadParams {
    fn default() -> Self {
        Self {
            directories: 1_000,
            alpha: 1.0,
            mean_requests: 10.0,
            related: 0.0,
        }
    }
}

/// Size in bytes of file `j` (0-based, 0..9) of class `class` (0..4).
pub fn class_file_size(class: u32, j: u32) -> u32 {
    // (j + 1) × 10^class × 102.4 bytes, exact in integers.
    (j + 1) * 10u32.pow(class) * 1024 / 10
}

/// A stream of connections, each a list of file ids; the same seed gives
/// the same connections in the same order, whoever consumes them.
#[derive(Debug, Clone)]
pub struct Workload {
    params: WorkloadParams,
    sizes: Vec<u32>,
    /// Cumulative Zipf weights of the directories, the last one 1.
    directory_cdf: Vec<f64>,
    class_cdf: [f64; 4],
    file_cdf: [f64; 9],
    rng: SplitMix64,
}

fn cdf<const N: usize>(weights: [f64; N]) -> [f64; N] {
    let total: f64 = weights.iter().sum();
    let mut acc = 0.0;
    weights.map(|w| {
        acc += w / total;
        acc
    })
}

/// Index of the first entry of a cumulative table `>= u`.
fn pick(cdf: &[f64], u: f64) -> usize {
    cdf.partition_point(|&c| c < u).min(cdf.len() - 1)
}

impl Workload {
    /// The file set of `params` and a request stream seeded with `seed`.
    pub fn new(params: WorkloadParams, seed: u64) -> Self {
        let directories = params.directories.max(1);
        let mut sizes = Vec::with_capacity((directories * FILES_PER_DIRECTORY) as usize);
        for _ in 0..directories {
            for class in 0..4 {
                for j in 0..9 {
                    sizes.push(class_file_size(class, j));
                }
            }
        }
        let mut acc = 0.0;
        let mut directory_cdf: Vec<f64> = (1..=directories)
            .map(|rank| {
                acc += 1.0 / f64::from(rank).powf(params.alpha);
                acc
            })
            .collect();
        for c in &mut directory_cdf {
            *c /= acc;
        }
        Self {
            params,
            sizes,
            directory_cdf,
            class_cdf: cdf(CLASS_MIX),
            file_cdf: cdf(FILE_MIX),
            rng: SplitMix64::new(seed),
        }
    }

    /// Sizes in bytes, indexed by file id.
    pub fn sizes(&self) -> &[u32] {
        &self.sizes
    }

    /// One request: a file id.
    pub fn next_file(&mut self) -> u32 {
        let d = pick(&self.directory_cdf, self.rng.next_f64()) as u32;
        self.file_in(d)
    }

    /// A file of directory `d`, by the class mix and the per-file table.
    fn file_in(&mut self, d: u32) -> u32 {
        let c = pick(&self.class_cdf, self.rng.next_f64()) as u32;
        let j = pick(&self.file_cdf, self.rng.next_f64()) as u32;
        d * FILES_PER_DIRECTORY + c * 9 + j
    }

    /// The next connection's requests, replacing `out`'s contents.
    pub fn next_connection(&mut self, out: &mut Vec<u32>) {
        out.clear();
        let n = self.rng.geometric(self.params.mean_requests);
        let mut f = self.next_file();
        out.push(f);
        for _ in 1..n {
            // Drawn whatever `related` is, so 0 keeps the default stream.
            let same = self.rng.next_f64() < self.params.related;
            f = if same {
                self.file_in(f / FILES_PER_DIRECTORY)
            } else {
                self.next_file()
            };
            out.push(f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_sizes_follow_specweb99_classes() {
        assert_eq!(class_file_size(0, 0), 102);
        assert_eq!(class_file_size(1, 0), 1_024);
        assert_eq!(class_file_size(2, 8), 92_160);
        assert_eq!(class_file_size(3, 4), 512_000); // 500 KB: still cached
        assert_eq!(class_file_size(3, 5), 614_400); // over 500 KB: never
        let w = Workload::new(WorkloadParams::default(), 1);
        assert_eq!(w.sizes().len(), 36_000);
        let directory: u64 = w.sizes()[..36].iter().map(|&s| u64::from(s)).sum();
        assert_eq!(directory, 5_119_484); // 4.9 MiB per directory
    }

    #[test]
    fn requests_follow_the_class_mix_and_zipf_head() {
        let mut w = Workload::new(WorkloadParams::default(), 3);
        let n = 400_000;
        let (mut class, mut dir0, mut bytes) = ([0u32; 4], 0u32, 0u64);
        for _ in 0..n {
            let f = w.next_file();
            class[(f % 36 / 9) as usize] += 1;
            dir0 += u32::from(f < 36);
            bytes += u64::from(w.sizes()[f as usize]);
        }
        for (got, want) in class.iter().zip(CLASS_MIX) {
            let share = f64::from(*got) / f64::from(n);
            assert!((share - want).abs() < 0.005, "{share} vs {want}");
        }
        // Zipf(1) over 1000 directories: the first gets 1 / H(1000) = 13.4 %.
        let head = f64::from(dir0) / f64::from(n);
        assert!((head - 0.1336).abs() < 0.003, "{head}");
        let mean_kb = bytes as f64 / f64::from(n) / 1024.0;
        assert!((13.0..16.0).contains(&mean_kb), "{mean_kb} KB");
    }

    #[test]
    fn related_requests_stay_in_the_directory_of_the_one_before() {
        let share_same = |related: f64| {
            let params = WorkloadParams {
                related,
                ..WorkloadParams::default()
            };
            let mut w = Workload::new(params, 5);
            let (mut same, mut pairs, mut conn) = (0u32, 0u32, Vec::new());
            for _ in 0..20_000 {
                w.next_connection(&mut conn);
                for p in conn.windows(2) {
                    pairs += 1;
                    same += u32::from(p[0] / 36 == p[1] / 36);
                }
            }
            f64::from(same) / f64::from(pairs)
        };
        // Independent requests share a directory by chance only: the sum of
        // the squared Zipf shares, about 3 % for Zipf(1) over 1000.
        let chance = share_same(0.0);
        assert!(chance < 0.05, "{chance}");
        let related = share_same(0.75);
        let want = 0.75 + 0.25 * chance;
        assert!((related - want).abs() < 0.01, "{related} vs {want}");
    }
}
