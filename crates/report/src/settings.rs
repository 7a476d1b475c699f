//! The settings block's lines as typed values (stand-in until the probe branch lands: the type
//! and its printed line; the trial of each line against the probe comes with it).

use serde::{Deserialize, Serialize};

/// An environment variable the verdict may tell a user to set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EnvVar {
    OpenblasNumThreads,
    OpenblasCoretype,
    MatmulNumThreads,
    RayonNumThreads,
    OmpNumThreads,
}

impl EnvVar {
    pub fn name(self) -> &'static str {
        match self {
            Self::OpenblasNumThreads => "OPENBLAS_NUM_THREADS",
            Self::OpenblasCoretype => "OPENBLAS_CORETYPE",
            Self::MatmulNumThreads => "MATMUL_NUM_THREADS",
            Self::RayonNumThreads => "RAYON_NUM_THREADS",
            Self::OmpNumThreads => "OMP_NUM_THREADS",
        }
    }
}

/// One thing to set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Setting {
    Env {
        var: EnvVar,
        value: String,
    },
    OpenBlasLayer {
        layer: String,
    },
    Mpirun {
        ranks: u64,
        bind_none: bool,
        oversubscribe: bool,
        blas_threads: Option<u64>,
    },
    RayonPool {
        threads: u64,
    },
    FaerPar {
        tasks: u64,
        par: u64,
    },
}

impl Setting {
    /// The line as printed, with `comment` after it.
    pub fn line(&self, comment: &str) -> String {
        match self {
            Self::Env { var, value } => format!("export {}={value}   # {comment}", var.name()),
            Self::OpenBlasLayer { layer } => format!(
                "export LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-{layer}   # {comment}"
            ),
            Self::Mpirun {
                ranks,
                bind_none,
                oversubscribe,
                blas_threads,
            } => {
                let mut l = String::from("mpirun");
                if *bind_none {
                    l.push_str(" --bind-to none");
                }
                if *oversubscribe {
                    l.push_str(" --oversubscribe");
                }
                l.push_str(&format!(" -np {ranks}"));
                if let Some(b) = blas_threads {
                    l.push_str(&format!(" -x OPENBLAS_NUM_THREADS={b}"));
                }
                format!("{l} ./your-program   # {comment}")
            }
            Self::RayonPool { threads } => format!(
                "let pool = rayon::ThreadPoolBuilder::new().num_threads({threads}).build()?;   // {comment}"
            ),
            Self::FaerPar { tasks, par } => {
                let par = if *par == 1 {
                    "Par::Seq".to_owned()
                } else {
                    format!("Par::rayon({par})")
                };
                format!(
                    "// faer: {par} inside each of {tasks} tasks of a rayon pool of {tasks}; {comment}"
                )
            }
        }
    }
}
