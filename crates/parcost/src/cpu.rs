//! The CPU underneath the BLAS: the vector features that decide which OpenBLAS kernels can run
//! here, the clock measured rather than read, and the theoretical DGEMM peak those imply.
//!
//! A "% of peak" is only as honest as its peak: the best DGEMM a run measured says how fast the
//! loaded kernels go, not how fast the machine could go (Debian's OpenBLAS 0.3.21 fell back to
//! SSE3 kernels on an AVX-512 Xeon and ran at a seventh of its speed). The theoretical peak here
//! comes from the hardware alone: cores x FLOP per cycle x clock.

use std::collections::BTreeSet;
#[cfg(target_arch = "x86_64")]
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The `/proc/cpuinfo` flags that decide which BLAS kernels can run and how wide they are, in
/// the order they are shown. `pni` is reported as `sse3`.
pub const RELEVANT_FLAGS: [&str; 15] = [
    "sse3",
    "ssse3",
    "sse4_1",
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "avx512f",
    "avx512dq",
    "avx512cd",
    "avx512bw",
    "avx512vl",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
];

/// What the CPU is and which of the [`RELEVANT_FLAGS`] it offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuFeatures {
    /// `x86_64`, `aarch64`, ...: only x86-64 is checked; elsewhere `flags` is empty.
    pub arch: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<u32>,
    pub flags: BTreeSet<String>,
}

impl CpuFeatures {
    /// This machine's CPU, from `/proc/cpuinfo`.
    pub fn detect() -> Self {
        let text = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        Self::from_cpuinfo(std::env::consts::ARCH, &text)
    }

    /// Parses the first processor of a `/proc/cpuinfo` text (every core of a machine is the same
    /// kind here: hybrid P/E-core CPUs report the same flags on both).
    pub fn from_cpuinfo(arch: &str, text: &str) -> Self {
        let field = |name: &str| {
            text.lines()
                .take_while(|l| !l.trim().is_empty())
                .find(|l| l.split(':').next().is_some_and(|k| k.trim() == name))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        };
        let flags = if arch == "x86_64" {
            field("flags")
                .unwrap_or_default()
                .split_whitespace()
                .map(|f| if f == "pni" { "sse3" } else { f })
                .filter(|f| RELEVANT_FLAGS.contains(f))
                .map(str::to_owned)
                .collect()
        } else {
            BTreeSet::new()
        };
        Self {
            arch: arch.to_owned(),
            vendor: field("vendor_id"),
            family: field("cpu family").and_then(|v| v.parse().ok()),
            model: field("model").and_then(|v| v.parse().ok()),
            flags,
        }
    }

    pub fn has(&self, flag: &str) -> bool {
        self.flags.contains(flag)
    }

    /// Whether the kernels' features were checked at all (only on x86-64).
    pub fn checked(&self) -> bool {
        self.arch == "x86_64"
    }

    /// The widest vector of doubles the features allow: 8 with AVX-512F, 4 with AVX, 2 (SSE2,
    /// part of x86-64) otherwise.
    pub fn vector_doubles(&self) -> u32 {
        if self.has("avx512f") {
            8
        } else if self.has("avx") {
            4
        } else {
            2
        }
    }

    /// Double-precision FLOP per cycle per core the features imply, assuming two vector FMA
    /// units (every x86 core with FMA since Haswell and Zen 2 has two; some AVX-512 parts have
    /// one, and Zen 4 splits a 512-bit FMA in two, which the measured throughput shows). Without
    /// FMA: one add and one multiply per cycle.
    pub fn implied_flop_per_cycle(&self) -> u32 {
        let width = self.vector_doubles();
        if self.has("fma") {
            2 * 2 * width
        } else {
            2 * width
        }
    }

    /// `"family 6 model 207"`, or `None` when the text had neither.
    pub fn family_model(&self) -> Option<String> {
        Some(format!("family {} model {}", self.family?, self.model?))
    }
}

/// The machine's theoretical DGEMM peak and what it is made of.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Peak {
    /// The clock of one busy core, measured with a chain of dependent integer adds.
    pub clock_ghz: f64,
    /// What the features imply ([`CpuFeatures::implied_flop_per_cycle`]).
    pub implied_flop_per_cycle: u32,
    /// What a loop of independent FMAs at the widest vector reached, per cycle of that clock.
    pub measured_flop_per_cycle: f64,
    /// The per-cycle figure the peak uses: the implied one, halved while the measured loop
    /// stays below 75% of it (one FMA unit, or 512-bit ops split in two).
    pub flop_per_cycle: u32,
    pub cores: usize,
    /// GFLOP/s of the same loop on every CPU the process may use at once: what the cores
    /// deliver together (two vCPUs that are SMT siblings of one core, an all-core or AVX-512
    /// clock below one core's turbo, the slower cores of a hybrid part all show here and not
    /// in one core's figure). `None` in sidecars older than it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub together_gflops: Option<f64>,
    /// `cores x flop_per_cycle x clock_ghz`, or what the cores delivered together when that
    /// is less.
    pub theoretical_gflops: f64,
}

impl Peak {
    /// The peak from its parts: see [`Peak::flop_per_cycle`] and [`Peak::theoretical_gflops`].
    pub fn from_parts(
        features: &CpuFeatures,
        cores: usize,
        clock_ghz: f64,
        measured_flop_per_cycle: f64,
        together_gflops: Option<f64>,
    ) -> Self {
        let implied = features.implied_flop_per_cycle();
        let mut flop_per_cycle = implied;
        while flop_per_cycle > 2 && measured_flop_per_cycle < 0.75 * f64::from(flop_per_cycle) {
            flop_per_cycle /= 2;
        }
        let mut peak = Self {
            clock_ghz,
            implied_flop_per_cycle: implied,
            measured_flop_per_cycle,
            flop_per_cycle,
            cores,
            together_gflops,
            theoretical_gflops: 0.0,
        };
        let of_cores = peak.of_cores();
        peak.theoretical_gflops = together_gflops.map_or(of_cores, |t| t.min(of_cores));
        peak
    }

    /// `cores x flop_per_cycle x clock_ghz`: one core's figure times the cores.
    pub fn of_cores(&self) -> f64 {
        self.cores as f64 * f64::from(self.flop_per_cycle) * self.clock_ghz
    }

    /// Whether the cores together delivered less than [`Peak::of_cores`].
    pub fn limited_by_together(&self) -> bool {
        self.together_gflops.is_some_and(|t| t < self.of_cores())
    }

    /// Whether the cores together delivered less than 90% of one core's measured rate times
    /// the cores: something beyond the loop's own shortfall from the implied FLOP a cycle
    /// (SMT siblings, a lower all-core or wide-vector clock, slower cores).
    pub fn together_short_of_the_cores(&self) -> bool {
        self.limited_by_together()
            && self
                .together_gflops
                .is_some_and(|t| t < 0.9 * self.of_cores_measured())
    }

    /// One core's measured rate times the cores: `cores x measured_flop_per_cycle x clock`.
    pub fn of_cores_measured(&self) -> f64 {
        self.cores as f64 * self.measured_flop_per_cycle * self.clock_ghz
    }

    /// Measures the clock and the FMA throughput of one core, then of `threads` threads at
    /// once (about 0.3 s), for `cores` physical cores.
    ///
    /// `None` where there is no measuring loop (not x86-64).
    pub fn measure(features: &CpuFeatures, cores: usize, threads: usize) -> Option<Self> {
        let clock_ghz = measure_clock_ghz()?;
        let fma_gflops = measure_fma_gflops(features)?;
        let together = measure_fma_gflops_together(features, threads);
        Some(Self::from_parts(
            features,
            cores,
            clock_ghz,
            fma_gflops / clock_ghz,
            together,
        ))
    }
}

/// The loop that measures a core's floating-point throughput: independent FMAs at the widest
/// vector with FMA, else a multiply and an add at the widest vector (Sandy and Ivy Bridge have
/// AVX without FMA: one 256-bit multiply and one 256-bit add a cycle, 8 FLOP; measured with
/// 128-bit SSE2 they showed half and the peak was halved).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThroughputLoop {
    Fma512,
    Fma256,
    MulAdd256,
    MulAdd128,
}

impl ThroughputLoop {
    /// The loop `features` call for.
    pub fn for_features(features: &CpuFeatures) -> Self {
        match (features.vector_doubles(), features.has("fma")) {
            (8, true) => Self::Fma512,
            (4, true) => Self::Fma256,
            (4 | 8, false) => Self::MulAdd256,
            _ => Self::MulAdd128,
        }
    }
}

/// The best of a few short runs of `f`, which returns (units of work, elapsed): the highest rate
/// is the one least disturbed by the host.
#[cfg(target_arch = "x86_64")]
fn best_rate(mut f: impl FnMut(u64) -> (f64, Duration)) -> f64 {
    // Calibrate the iteration count to about 20 ms a run, then keep the best of five.
    let mut iterations = 1u64 << 10;
    loop {
        let (_, took) = f(iterations);
        if took >= Duration::from_millis(5) || iterations >= 1 << 40 {
            break;
        }
        iterations *= 4;
    }
    let (_, took) = f(iterations);
    let scale = (0.02 / took.as_secs_f64().max(1e-6)).clamp(1.0, 64.0);
    let iterations = (iterations as f64 * scale) as u64;
    (0..5)
        .map(|_| {
            let (work, took) = f(iterations);
            work / took.as_secs_f64().max(1e-9)
        })
        .fold(0.0, f64::max)
}

/// The clock in GHz, from two dependent chains checked against each other: 64-bit adds of a
/// register (one a cycle on every x86-64 core; an add of an *immediate* is not used, since
/// Golden Cove and later cores fold chains of them in the renamer and ran 8 or more a cycle
/// here, 21.6 "GHz" on a Sapphire Rapids), and 64-bit multiplies (3 cycles each on every
/// x86-64 performance core since Nehalem and Zen 1). See [`clock_from`].
pub fn measure_clock_ghz() -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        let adds = best_rate(|iterations| {
            let start = Instant::now();
            let x = x86::add_chain(iterations);
            let took = start.elapsed();
            std::hint::black_box(x);
            ((iterations * x86::OPS_PER_ITERATION) as f64, took)
        });
        let muls = best_rate(|iterations| {
            let start = Instant::now();
            let x = x86::mul_chain(iterations / 3 + 1);
            let took = start.elapsed();
            std::hint::black_box(x);
            (((iterations / 3 + 1) * x86::OPS_PER_ITERATION) as f64, took)
        });
        Some(clock_from(adds, muls) / 1e9)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}

/// Cycles a dependent 64-bit multiply takes on x86-64 performance cores.
pub const MUL_LATENCY: f64 = 3.0;

/// The clock in Hz from dependent adds a second and dependent multiplies a second: the adds'
/// rate, unless it is more than 25% above what the multiplies imply (a core that runs more
/// than one dependent add a cycle), then the multiplies'.
pub fn clock_from(adds_per_s: f64, muls_per_s: f64) -> f64 {
    let by_muls = muls_per_s * MUL_LATENCY;
    if adds_per_s > 1.25 * by_muls {
        by_muls
    } else {
        adds_per_s
    }
}

/// GFLOP/s of one core running [`ThroughputLoop::for_features`].
pub fn measure_fma_gflops(features: &CpuFeatures) -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        let chosen = ThroughputLoop::for_features(features);
        let rate = best_rate(|iterations| {
            let start = Instant::now();
            let flop = x86::throughput(iterations, chosen);
            (flop as f64, start.elapsed())
        });
        Some(rate / 1e9)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = features;
        None
    }
}

/// GFLOP/s of `threads` threads running the same loop at once, released together by a
/// barrier, timed until the last is done (the best of a few runs, like one core's).
pub fn measure_fma_gflops_together(features: &CpuFeatures, threads: usize) -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        let chosen = ThroughputLoop::for_features(features);
        let threads = threads.max(1);
        // A thread that cannot be started (a container's process limit) leaves no figure:
        // `None`, never a rate of fewer threads than asked.
        let started_all = std::cell::Cell::new(true);
        let rate = best_rate(|iterations| {
            // The threads wait on a gate this one holds shut while it starts them, then opens:
            // released together (and told to stop at once when one could not be started).
            let gate = std::sync::RwLock::new(false);
            std::thread::scope(|s| {
                let mut shut = gate
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let mut workers = Vec::with_capacity(threads);
                for _ in 0..threads {
                    let worker = std::thread::Builder::new().spawn_scoped(s, || {
                        let abort = *gate
                            .read()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        if abort {
                            0
                        } else {
                            x86::throughput(iterations, chosen)
                        }
                    });
                    match worker {
                        Ok(w) => workers.push(w),
                        Err(_) => started_all.set(false),
                    }
                }
                *shut = workers.len() < threads;
                drop(shut);
                let start = Instant::now();
                // A worker that panicked did no work: its FLOP count as none (a lower rate,
                // never a higher one).
                let flop: u64 = workers.into_iter().map(|w| w.join().unwrap_or(0)).sum();
                (flop as f64, start.elapsed().max(Duration::from_nanos(1)))
            })
        });
        started_all.get().then_some(rate / 1e9)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (features, threads);
        None
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! The two measuring loops; `unsafe` only where a feature the CPU was checked for is used.

    pub const OPS_PER_ITERATION: u64 = 64;

    /// `iterations x 64` dependent adds of a register (not an immediate, which the renamer of
    /// recent Intel cores folds).
    pub fn add_chain(iterations: u64) -> u64 {
        let mut x: u64 = 0;
        let mut n = iterations.max(1);
        let one: u64 = std::hint::black_box(1);
        // SAFETY: register-only arithmetic and a loop; no memory is touched.
        unsafe {
            std::arch::asm!(
                "2:",
                ".rept 64",
                "add {x}, {one}",
                ".endr",
                "dec {n}",
                "jnz 2b",
                x = inout(reg) x,
                n = inout(reg) n,
                one = in(reg) one,
                options(nomem, nostack),
            );
        }
        let _ = n;
        x
    }

    /// `iterations x 64` dependent 64-bit multiplies.
    pub fn mul_chain(iterations: u64) -> u64 {
        let mut x: u64 = std::hint::black_box(3);
        let mut n = iterations.max(1);
        let k: u64 = std::hint::black_box(0x9E37_79B9_7F4A_7C15);
        // SAFETY: register-only arithmetic and a loop; no memory is touched.
        unsafe {
            std::arch::asm!(
                "2:",
                ".rept 64",
                "imul {x}, {k}",
                ".endr",
                "dec {n}",
                "jnz 2b",
                x = inout(reg) x,
                n = inout(reg) n,
                k = in(reg) k,
                options(nomem, nostack),
            );
        }
        let _ = n;
        x
    }

    /// Twelve independent accumulator chains of `chosen`: more than FMA latency (4-5) x
    /// units (2), so the units never wait. Returns the FLOP done. A loop whose features the
    /// CPU does not report at run time falls back to the 128-bit one.
    pub fn throughput(iterations: u64, chosen: super::ThroughputLoop) -> u64 {
        use super::ThroughputLoop as L;
        let chains = 12;
        match chosen {
            L::Fma512 if std::arch::is_x86_feature_detected!("avx512f") => {
                // SAFETY: AVX-512F was just detected.
                unsafe { fma512(iterations) };
                iterations * chains * 8 * 2
            }
            L::Fma256 | L::Fma512 if std::arch::is_x86_feature_detected!("fma") => {
                // SAFETY: FMA (and so AVX) was just detected.
                unsafe { fma256(iterations) };
                iterations * chains * 4 * 2
            }
            L::MulAdd256 if std::arch::is_x86_feature_detected!("avx") => {
                // SAFETY: AVX was just detected.
                unsafe { avx_mul_add_on(iterations) };
                iterations * chains * 4 * 2
            }
            _ => {
                // SAFETY: SSE2 is part of x86-64.
                unsafe { sse2_mul_add_on(iterations) };
                iterations * chains * 2 * 2
            }
        }
    }

    // The loops are written in assembly so that what runs does not depend on the optimiser: a
    // debug build (the tests) runs the same instructions as the bench. Each iteration is 12
    // independent register-only multiply-adds; zeros keep every value normal (`$enter` zeroes
    // the registers: a denormal left in one would cost microcode assists; `vzeroall` and
    // `vzeroupper` touch all sixteen, so all sixteen are declared). `$leave` clears the
    // upper halves the AVX loops dirtied: the compiler does not see them in assembly, and with
    // them dirty every later SSE instruction of the process (all of Rust's own floating point
    // on x86-64) waits on a merge; on an AVX-512 Xeon here the element-wise job ran 30x
    // slower in every suite process that had measured its clock (9.8 s instead of 0.3 s).
    macro_rules! twelve_chains {
        ($enter:literal, $leave:literal, $iterations:expr, $($op:literal),+ $(,)?; $($reg:tt),+) => {
            std::arch::asm!(
                $enter,
                "2:",
                $($op,)+
                "dec {n}",
                "jnz 2b",
                $leave,
                n = inout(reg) $iterations.max(1) => _,
                $(out($reg) _,)+
                options(nomem, nostack),
            )
        };
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn fma512(iterations: u64) {
        // SAFETY: register-only arithmetic on zmm registers (AVX-512F, enabled here).
        unsafe {
            twelve_chains!("vzeroall", "vzeroupper", iterations,
                "vfmadd231pd zmm0, zmm12, zmm13", "vfmadd231pd zmm1, zmm12, zmm13",
                "vfmadd231pd zmm2, zmm12, zmm13", "vfmadd231pd zmm3, zmm12, zmm13",
                "vfmadd231pd zmm4, zmm12, zmm13", "vfmadd231pd zmm5, zmm12, zmm13",
                "vfmadd231pd zmm6, zmm12, zmm13", "vfmadd231pd zmm7, zmm12, zmm13",
                "vfmadd231pd zmm8, zmm12, zmm13", "vfmadd231pd zmm9, zmm12, zmm13",
                "vfmadd231pd zmm10, zmm12, zmm13", "vfmadd231pd zmm11, zmm12, zmm13";
                "zmm0", "zmm1", "zmm2", "zmm3", "zmm4", "zmm5", "zmm6", "zmm7", "zmm8", "zmm9",
                "zmm10", "zmm11", "zmm12", "zmm13", "zmm14", "zmm15")
        }
    }

    #[target_feature(enable = "avx,fma")]
    unsafe fn fma256(iterations: u64) {
        // SAFETY: register-only arithmetic on ymm registers (AVX and FMA, enabled here).
        unsafe {
            twelve_chains!("vzeroall", "vzeroupper", iterations,
                "vfmadd231pd ymm0, ymm12, ymm13", "vfmadd231pd ymm1, ymm12, ymm13",
                "vfmadd231pd ymm2, ymm12, ymm13", "vfmadd231pd ymm3, ymm12, ymm13",
                "vfmadd231pd ymm4, ymm12, ymm13", "vfmadd231pd ymm5, ymm12, ymm13",
                "vfmadd231pd ymm6, ymm12, ymm13", "vfmadd231pd ymm7, ymm12, ymm13",
                "vfmadd231pd ymm8, ymm12, ymm13", "vfmadd231pd ymm9, ymm12, ymm13",
                "vfmadd231pd ymm10, ymm12, ymm13", "vfmadd231pd ymm11, ymm12, ymm13";
                "ymm0", "ymm1", "ymm2", "ymm3", "ymm4", "ymm5", "ymm6", "ymm7", "ymm8", "ymm9",
                "ymm10", "ymm11", "ymm12", "ymm13", "ymm14", "ymm15")
        }
    }

    /// AVX without FMA: a 256-bit multiply then an add in each of the 12 chains (one
    /// multiply unit and one add unit, both busy every cycle).
    #[target_feature(enable = "avx")]
    unsafe fn avx_mul_add_on(iterations: u64) {
        // SAFETY: register-only arithmetic on ymm registers (AVX, enabled here).
        unsafe {
            twelve_chains!("vzeroall", "vzeroupper", iterations,
                "vmulpd ymm0, ymm0, ymm12", "vaddpd ymm0, ymm0, ymm13",
                "vmulpd ymm1, ymm1, ymm12", "vaddpd ymm1, ymm1, ymm13",
                "vmulpd ymm2, ymm2, ymm12", "vaddpd ymm2, ymm2, ymm13",
                "vmulpd ymm3, ymm3, ymm12", "vaddpd ymm3, ymm3, ymm13",
                "vmulpd ymm4, ymm4, ymm12", "vaddpd ymm4, ymm4, ymm13",
                "vmulpd ymm5, ymm5, ymm12", "vaddpd ymm5, ymm5, ymm13",
                "vmulpd ymm6, ymm6, ymm12", "vaddpd ymm6, ymm6, ymm13",
                "vmulpd ymm7, ymm7, ymm12", "vaddpd ymm7, ymm7, ymm13",
                "vmulpd ymm8, ymm8, ymm12", "vaddpd ymm8, ymm8, ymm13",
                "vmulpd ymm9, ymm9, ymm12", "vaddpd ymm9, ymm9, ymm13",
                "vmulpd ymm10, ymm10, ymm12", "vaddpd ymm10, ymm10, ymm13",
                "vmulpd ymm11, ymm11, ymm12", "vaddpd ymm11, ymm11, ymm13";
                "ymm0", "ymm1", "ymm2", "ymm3", "ymm4", "ymm5", "ymm6", "ymm7", "ymm8", "ymm9",
                "ymm10", "ymm11", "ymm12", "ymm13", "ymm14", "ymm15")
        }
    }

    /// Without AVX: a multiply then an add in each of the 12 chains.
    unsafe fn sse2_mul_add_on(iterations: u64) {
        // SAFETY: register-only arithmetic on xmm registers (SSE2 is part of x86-64).
        unsafe {
            twelve_chains!(
                "xorpd xmm12, xmm12\nxorpd xmm13, xmm13", "", iterations,
                "mulpd xmm0, xmm12", "addpd xmm0, xmm13", "mulpd xmm1, xmm12", "addpd xmm1, xmm13",
                "mulpd xmm2, xmm12", "addpd xmm2, xmm13", "mulpd xmm3, xmm12", "addpd xmm3, xmm13",
                "mulpd xmm4, xmm12", "addpd xmm4, xmm13", "mulpd xmm5, xmm12", "addpd xmm5, xmm13",
                "mulpd xmm6, xmm12", "addpd xmm6, xmm13", "mulpd xmm7, xmm12", "addpd xmm7, xmm13",
                "mulpd xmm8, xmm12", "addpd xmm8, xmm13", "mulpd xmm9, xmm12", "addpd xmm9, xmm13",
                "mulpd xmm10, xmm12", "addpd xmm10, xmm13", "mulpd xmm11, xmm12",
                "addpd xmm11, xmm13";
                "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
                "xmm10", "xmm11", "xmm12", "xmm13")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The AVX loops leave no upper halves in use: left dirty, every later SSE instruction of
    /// the process waits on a merge (the element-wise job ran 30x slower after the clock was
    /// measured). Read from XINUSE (`xgetbv` 1): bit 2, the upper halves of ymm; bit 6, of zmm.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_vector_loops_leave_no_upper_state_in_use() {
        // SAFETY: cpuid has no preconditions on x86-64.
        #[allow(unused_unsafe)]
        let leaf = unsafe { std::arch::x86_64::__cpuid_count(0xd, 1) };
        if leaf.eax & (1 << 2) == 0 || !std::arch::is_x86_feature_detected!("fma") {
            eprintln!("this CPU reports no XINUSE (xgetbv 1) or no FMA: nothing to check");
            return;
        }
        let in_use = || -> u64 {
            let (lo, hi): (u32, u32);
            // SAFETY: xgetbv with ecx = 1 is supported (checked above); it reads a register.
            unsafe {
                std::arch::asm!("xgetbv", in("ecx") 1, out("eax") lo, out("edx") hi,
                    options(nomem, nostack));
            }
            (u64::from(hi) << 32) | u64::from(lo)
        };
        for chosen in [
            ThroughputLoop::Fma256,
            ThroughputLoop::Fma512,
            ThroughputLoop::MulAdd256,
        ] {
            x86::throughput(1_000, chosen);
            let dirty = in_use() & ((1 << 2) | (1 << 6));
            assert_eq!(dirty, 0, "{chosen:?}: XINUSE {dirty:#x} after the loop");
        }
    }

    pub(crate) const ZEN5: &str = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 26\n\
        model\t\t: 2\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse sse2 pni ssse3 fma sse4_1 sse4_2 \
        avx avx2 avx512f avx512dq avx512cd avx512bw avx512vl avx512_bf16\n\nprocessor\t: 1\n";

    #[test]
    fn cpuinfo_gives_the_flags_that_matter() {
        let f = CpuFeatures::from_cpuinfo("x86_64", ZEN5);
        assert_eq!(f.vendor.as_deref(), Some("AuthenticAMD"));
        assert_eq!(f.family_model().as_deref(), Some("family 26 model 2"));
        assert!(f.has("sse3") && f.has("avx512_bf16") && !f.has("pni") && !f.has("fpu"));
        assert_eq!(f.vector_doubles(), 8);
        assert_eq!(f.implied_flop_per_cycle(), 32);
        let old = CpuFeatures::from_cpuinfo("x86_64", "flags : sse sse2 pni ssse3\n");
        assert_eq!((old.vector_doubles(), old.implied_flop_per_cycle()), (2, 4));
        let arm = CpuFeatures::from_cpuinfo("aarch64", "Features : fp asimd\n");
        assert!(!arm.checked() && arm.flags.is_empty());
    }

    #[test]
    fn the_peak_halves_when_the_loop_shows_half_the_units() {
        let f = CpuFeatures::from_cpuinfo("x86_64", ZEN5);
        let full = Peak::from_parts(&f, 2, 3.0, 30.5, None);
        assert_eq!(full.flop_per_cycle, 32);
        assert!((full.theoretical_gflops - 192.0).abs() < 1e-9);
        // Zen 4: 512-bit FMAs run as two 256-bit halves.
        assert_eq!(Peak::from_parts(&f, 2, 3.0, 15.8, None).flop_per_cycle, 16);
    }

    #[test]
    fn a_folded_add_chain_gives_way_to_the_multiplies() {
        // One add a cycle at 3 GHz, and multiplies that agree: the adds.
        assert_eq!(clock_from(3.0e9, 1.0e9), 3.0e9);
        // Golden Cove folding immediate adds, 8 a cycle: the multiplies' 3 GHz.
        assert_eq!(clock_from(24.0e9, 1.0e9), 3.0e9);
    }

    #[test]
    fn the_clock_and_fma_rate_are_plausible() {
        let f = CpuFeatures::detect();
        let Some(peak) = Peak::measure(&f, 1, 1) else {
            return;
        };
        // Loose bounds: other tests run beside this one on a 2-core machine.
        assert!(
            (0.2..8.0).contains(&peak.clock_ghz),
            "clock {} GHz",
            peak.clock_ghz
        );
        // The loops are assembly: a debug build measures what a release build does (an
        // intrinsics loop reached 0.4 FLOP a cycle here unoptimised, against 32 optimised).
        let implied = f64::from(peak.implied_flop_per_cycle);
        assert!(
            peak.measured_flop_per_cycle > 0.25 * implied
                && peak.measured_flop_per_cycle < 1.5 * implied,
            "{peak:?}"
        );
    }

    /// A CPU as the peak sees it: its `/proc/cpuinfo` head, the rates its loops would reach,
    /// and the peak that must come out.
    struct Part {
        name: &'static str,
        cpuinfo: &'static str,
        /// Physical cores the process may use.
        cores: usize,
        /// Dependent register adds and multiplies a second on one core.
        adds_per_s: f64,
        muls_per_s: f64,
        /// GFLOP/s of [`ThroughputLoop::for_features`] on one core, then on every CPU at once.
        one_core_gflops: f64,
        together_gflops: f64,
        want_loop: ThroughputLoop,
        want_clock_ghz: f64,
        want_flop_per_cycle: u32,
        want_gflops: f64,
    }

    fn cpuinfo(family: u32, model: u32, flags: &str) -> String {
        format!(
            "processor\t: 0\nvendor_id\t: X\ncpu family\t: {family}\nmodel\t\t: {model}\n\
             flags\t\t: fpu sse sse2 {flags}\n\n"
        )
    }

    const AVX2: &str = "pni ssse3 sse4_1 sse4_2 avx avx2 fma";
    const AVX512: &str = "pni ssse3 sse4_1 sse4_2 avx avx2 fma avx512f avx512dq avx512cd \
                          avx512bw avx512vl";

    /// Each family the peak must hold on, from the rates its loops reach (documented clocks
    /// and units; the hybrid and SMT figures are what their cores deliver together). Zen 3 is
    /// the plain case; each other one fails with an old method put back: the adds alone as the
    /// clock (Sapphire Rapids: Golden Cove folds chains), 128-bit SSE2 for AVX without FMA (half
    /// of Sandy Bridge's peak), one core's figure times the cores (Skylake-SP's all-core
    /// AVX-512 clock, Alder Lake's E-cores, SMT siblings shown as two cores).
    #[test]
    fn the_peak_holds_on_every_family() {
        let parts = [
            Part {
                // Zen 3 (EPYC 7003), 3.2 GHz, two 256-bit FMA units: 16 FLOP a cycle.
                name: "Zen 3",
                cpuinfo: "25 1",
                cores: 2,
                adds_per_s: 3.2e9,
                muls_per_s: 3.2e9 / 3.0,
                one_core_gflops: 50.8,
                // Together a little above the product (timing noise): the product stands.
                together_gflops: 103.0,
                want_loop: ThroughputLoop::Fma256,
                want_clock_ghz: 3.2,
                want_flop_per_cycle: 16,
                want_gflops: 2.0 * 16.0 * 3.2,
            },
            Part {
                // Sandy Bridge (Xeon E5-2670), 3.3 GHz turbo, AVX without FMA: one 256-bit
                // multiply and one add a cycle, 8 FLOP.
                name: "Sandy Bridge",
                cpuinfo: "6 45",
                cores: 2,
                adds_per_s: 3.3e9,
                muls_per_s: 3.3e9 / 3.0,
                one_core_gflops: 26.0,
                together_gflops: 52.4,
                want_loop: ThroughputLoop::MulAdd256,
                want_clock_ghz: 3.3,
                want_flop_per_cycle: 8,
                want_gflops: 52.4,
            },
            Part {
                // Skylake-SP (Xeon Gold 6148), 3.7 GHz one core, two AVX-512 FMA units, and an
                // all-core AVX-512 clock of 2.2 GHz: 2 x 32 x 2.2 = 140.8, not 2 x 32 x 3.7.
                name: "Skylake-SP",
                cpuinfo: "6 85",
                cores: 2,
                adds_per_s: 3.7e9,
                muls_per_s: 3.7e9 / 3.0,
                one_core_gflops: 2.9 * 32.0,
                together_gflops: 140.0,
                want_loop: ThroughputLoop::Fma512,
                want_clock_ghz: 3.7,
                want_flop_per_cycle: 32,
                want_gflops: 140.0,
            },
            Part {
                // Sapphire Rapids (Xeon 8480), 3.0 GHz: register adds as measured, 21.6 "GHz"
                // if the renamer folds them; the multiplies say 3.0.
                name: "Sapphire Rapids",
                cpuinfo: "6 143",
                cores: 2,
                adds_per_s: 21.6e9,
                muls_per_s: 1.0e9,
                one_core_gflops: 94.0,
                together_gflops: 187.0,
                want_loop: ThroughputLoop::Fma512,
                want_clock_ghz: 3.0,
                want_flop_per_cycle: 32,
                want_gflops: 187.0,
            },
            Part {
                // Alder Lake (i9-12900K), 8 P-cores (4.9 GHz one core, 4.7 all-core, 16 FLOP a
                // cycle) and 8 E-cores (3.7 GHz, 8 FLOP a cycle): 16 cores, but together
                // 8 x 16 x 4.7 + 8 x 8 x 3.7 = 838.4, not 16 x 16 x 4.9 = 1254.4.
                name: "Alder Lake (hybrid)",
                cpuinfo: "6 151",
                cores: 16,
                adds_per_s: 4.9e9,
                muls_per_s: 4.9e9 / 3.0,
                one_core_gflops: 78.0,
                together_gflops: 838.4,
                want_loop: ThroughputLoop::Fma256,
                want_clock_ghz: 4.9,
                want_flop_per_cycle: 16,
                want_gflops: 838.4,
            },
            Part {
                // Two vCPUs that are SMT siblings of one Zen 4 core, shown to the guest as two
                // cores: together they deliver one core's FMA rate.
                name: "SMT siblings as two vCPUs",
                cpuinfo: "25 17",
                cores: 2,
                adds_per_s: 3.7e9,
                muls_per_s: 3.7e9 / 3.0,
                one_core_gflops: 58.0,
                together_gflops: 59.0,
                want_loop: ThroughputLoop::Fma512,
                want_clock_ghz: 3.7,
                // Zen 4 splits a 512-bit FMA in two: the loop shows 16 of the 32 implied.
                want_flop_per_cycle: 16,
                want_gflops: 59.0,
            },
        ];
        for part in parts {
            let (family, model) = part.cpuinfo.split_once(' ').expect("family model");
            let flags = if ["6 85", "6 143", "25 17"].contains(&part.cpuinfo) {
                AVX512
            } else if part.cpuinfo == "6 45" {
                "pni ssse3 sse4_1 sse4_2 avx"
            } else {
                AVX2
            };
            let text = cpuinfo(family.parse().expect("n"), model.parse().expect("n"), flags);
            let f = CpuFeatures::from_cpuinfo("x86_64", &text);
            let name = part.name;
            assert_eq!(ThroughputLoop::for_features(&f), part.want_loop, "{name}");
            let clock = clock_from(part.adds_per_s, part.muls_per_s) / 1e9;
            assert!(
                (clock - part.want_clock_ghz).abs() < 1e-9,
                "{name}: clock {clock}"
            );
            let peak = Peak::from_parts(
                &f,
                part.cores,
                clock,
                part.one_core_gflops / clock,
                Some(part.together_gflops),
            );
            assert_eq!(peak.flop_per_cycle, part.want_flop_per_cycle, "{name}");
            assert!(
                (peak.theoretical_gflops - part.want_gflops).abs() < 1e-9,
                "{name}: {peak:?}"
            );
        }
    }

    #[test]
    fn the_cores_together_bound_the_peak_only_from_above() {
        let f = CpuFeatures::from_cpuinfo("x86_64", ZEN5);
        // Together a little above one core's figure times two (noise): the product stands.
        let p = Peak::from_parts(&f, 2, 3.0, 30.5, Some(200.0));
        assert!((p.theoretical_gflops - 192.0).abs() < 1e-9 && !p.limited_by_together());
        let p = Peak::from_parts(&f, 2, 3.0, 30.5, Some(100.0));
        assert!((p.theoretical_gflops - 100.0).abs() < 1e-9 && p.limited_by_together());
        assert!(p.together_short_of_the_cores(), "100 of 2 x 91.5");
        // Below the product only by the loop's own rate (29 of 32 a cycle on each core): that.
        let p = Peak::from_parts(&f, 2, 3.0, 29.0, Some(172.0));
        assert!(p.limited_by_together() && !p.together_short_of_the_cores());
        // A loop at 22.5 of 32 a cycle makes the figure 16: together above the product is the
        // product, never "short of the cores" though under 0.9 x 2 x 22.5 x 3.
        let p = Peak::from_parts(&f, 2, 3.0, 22.5, Some(110.0));
        assert!((p.theoretical_gflops - 96.0).abs() < 1e-9 && !p.together_short_of_the_cores());
    }
}
