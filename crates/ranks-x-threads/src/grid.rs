//! The grid: R ranks x B BLAS threads per rank, R and B in {1, P, 2P} with R x B at most 4P
//! (B = 1 alone under the serial OpenBLAS layer), ranks unbound; beside it the default cell,
//! what a user who sets nothing runs: `mpirun -np P`, OpenMPI's own binding, OpenBLAS's own
//! thread count. The benchmark ids of a grid cell:
//! `ranks-x-threads/<batch|scatter>/layer=L,n=256,pairs=64,matrices=16/ranks=R,blas_threads=B`
//! and `ranks-x-threads/startup/layer=L/ranks=R,blas_threads=B`; of the default cell the same
//! with `variant=default,ranks=P` as the last level (no `blas_threads`: nothing set it).
//! `,hosts=H` follows when a hostfile spreads the ranks.

use parcost::harness::distinct;
use parcost::id::{key, params, variant};

use crate::batch::Shape;

/// One cell of the grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cell {
    pub ranks: usize,
    pub blas_threads: usize,
}

/// Every cell for `p` logical cores; `threaded`: whether the OpenBLAS layer runs threads at all.
pub fn cells(p: usize, threaded: bool) -> Vec<Cell> {
    let sweep = distinct([1, p, 2 * p]);
    let blas = if threaded { sweep.clone() } else { vec![1] };
    let mut out = Vec::new();
    for &ranks in &sweep {
        for &blas_threads in &blas {
            if ranks * blas_threads <= 4 * p.max(1) {
                out.push(Cell {
                    ranks,
                    blas_threads,
                });
            }
        }
    }
    out
}

/// What one job of the suite sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Setting {
    /// A cell of the grid: R ranks unbound, B BLAS threads each, both set by the bench.
    Grid(Cell),
    /// The user's default: `mpirun -np ranks` and nothing else.
    Default { ranks: usize },
}

impl From<Cell> for Setting {
    fn from(cell: Cell) -> Self {
        Self::Grid(cell)
    }
}

impl Setting {
    /// The user's default on `p` logical cores: a rank a core.
    pub fn default_for(p: usize) -> Self {
        Self::Default { ranks: p.max(1) }
    }

    pub fn ranks(self) -> usize {
        match self {
            Self::Grid(c) => c.ranks,
            Self::Default { ranks } => ranks,
        }
    }

    /// The BLAS threads the bench sets in every rank (`None`: it sets none).
    pub fn blas_threads(self) -> Option<usize> {
        match self {
            Self::Grid(c) => Some(c.blas_threads),
            Self::Default { .. } => None,
        }
    }
}

/// The last level of a job's ids: `ranks=R,blas_threads=B[,hosts=H]` for a grid cell,
/// `variant=default,ranks=P[,hosts=H]` for the default.
pub fn cell_params(setting: impl Into<Setting>, hosts: Option<usize>) -> String {
    let mut p = match setting.into() {
        Setting::Grid(cell) => params(&[
            (key::RANKS, &cell.ranks),
            (key::BLAS_THREADS, &cell.blas_threads),
        ]),
        Setting::Default { ranks } => {
            params(&[(key::VARIANT, &variant::DEFAULT), (key::RANKS, &ranks)])
        }
    };
    if let Some(h) = hosts {
        p.push_str(&format!(",{}={h}", key::HOSTS));
    }
    p
}

/// The id (below the suite) of `workload` in `cell`.
pub fn id(
    workload: &str,
    layer: &str,
    shape: &Shape,
    cell: impl Into<Setting>,
    hosts: Option<usize>,
) -> String {
    let w = params(&[
        (key::LAYER, &layer),
        (key::N, &shape.n),
        (key::PAIRS, &shape.pairs),
        (key::MATRICES, &shape.matrices),
    ]);
    format!("{workload}/{w}/{}", cell_params(cell, hosts))
}

/// The id (below the suite) of a job's start-up in `cell`.
pub fn startup_id(layer: &str, cell: impl Into<Setting>, hosts: Option<usize>) -> String {
    format!(
        "startup/{}/{}",
        params(&[(key::LAYER, &layer)]),
        cell_params(cell, hosts)
    )
}

/// The cell as error messages name it.
pub fn cell_name(layer: &str, cell: impl Into<Setting>, hosts: Option<usize>) -> String {
    format!("layer={layer}/{}", cell_params(cell, hosts))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(cells: &[Cell]) -> Vec<(usize, usize)> {
        cells.iter().map(|c| (c.ranks, c.blas_threads)).collect()
    }

    #[test]
    fn the_grid_stops_at_4p() {
        assert_eq!(
            pairs(&cells(2, true)),
            [
                (1, 1),
                (1, 2),
                (1, 4),
                (2, 1),
                (2, 2),
                (2, 4),
                (4, 1),
                (4, 2)
            ]
        );
        assert_eq!(pairs(&cells(2, false)), [(1, 1), (2, 1), (4, 1)]);
        assert_eq!(pairs(&cells(1, true)), [(1, 1), (1, 2), (2, 1), (2, 2)]);
        assert_eq!(cells(8, true).len(), 5);
    }

    #[test]
    fn ids_keep_the_contract() {
        let cell = Cell {
            ranks: 4,
            blas_threads: 2,
        };
        let full = format!(
            "ranks-x-threads/{}",
            id("batch", "openmp", &Shape::SUITE, cell, None)
        );
        assert_eq!(
            full,
            "ranks-x-threads/batch/layer=openmp,n=256,pairs=64,matrices=16/ranks=4,blas_threads=2"
        );
        let parsed = parcost::id::parse(&full).expect("parses");
        assert_eq!(parsed.params["ranks"], parcost::id::Value::Int(4));
        let start = format!("ranks-x-threads/{}", startup_id("serial", cell, Some(3)));
        assert_eq!(
            start,
            "ranks-x-threads/startup/layer=serial/ranks=4,blas_threads=2,hosts=3"
        );
        assert!(parcost::id::parse(&start).is_ok());
    }

    #[test]
    fn the_default_cell_shares_the_prefix_and_names_no_thread_count() {
        let default = Setting::default_for(2);
        assert_eq!((default.ranks(), default.blas_threads()), (2, None));
        let cell = Cell {
            ranks: 2,
            blas_threads: 1,
        };
        for workload in ["batch", "scatter"] {
            let grid = id(workload, "pthreads", &Shape::SUITE, cell, None);
            let own = id(workload, "pthreads", &Shape::SUITE, default, None);
            assert_eq!(
                grid.rsplit_once('/').map(|g| g.0),
                own.rsplit_once('/').map(|o| o.0)
            );
            assert!(own.ends_with("/variant=default,ranks=2"), "{own}");
            let parsed = parcost::id::parse(&format!("ranks-x-threads/{own}")).expect("parses");
            assert_eq!(
                parsed.params[key::VARIANT],
                parcost::id::Value::Name(variant::DEFAULT.into())
            );
            assert!(!parsed.params.contains_key(key::BLAS_THREADS));
        }
        assert_eq!(
            startup_id("openmp", default, Some(2)),
            "startup/layer=openmp/variant=default,ranks=2,hosts=2"
        );
        assert_eq!(
            cell_name("serial", default, None),
            "layer=serial/variant=default,ranks=2"
        );
    }
}
