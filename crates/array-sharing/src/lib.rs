//! Cost 5, sharing: the ways to get an array to another process, against threads that share
//! it. The transports are `parcost::transport`; this crate picks the cases and sizes.

use parcost::transport::{Shape, TransportKind};

pub const MIB: usize = 1 << 20;

/// Bytes moved: 1 MiB, 64 MiB, and the tutorial's 100 million f64 (800 MB, left out under
/// `--quick`).
pub const SIZES: [usize; 3] = [MIB, 64 * MIB, 800_000_000];

/// The largest array worth reading through the proxy: one round trip a 4 KiB slice.
pub const PROXY_MAX_BYTES: usize = MIB;

/// Whether the other side only reads the array or also writes it back in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    /// Shared transports only: the child adds 1 to every element, the parent sees it.
    ReadWrite,
}

impl Access {
    pub fn name(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::ReadWrite => "read-write",
        }
    }
}

/// One measured way of moving the array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Case {
    pub kind: TransportKind,
    pub shape: Shape,
    pub access: Access,
}

/// Every case measured at `bytes`: each transport persistent and read-only, a process per task
/// where the transport has one, read-write for the shared ones, the proxy on small arrays only.
pub fn cases(bytes: usize) -> Vec<Case> {
    let mut out = Vec::new();
    for kind in TransportKind::ALL {
        if kind == TransportKind::Proxy && bytes > PROXY_MAX_BYTES {
            continue;
        }
        let case = |shape, access| Case {
            kind,
            shape,
            access,
        };
        out.push(case(Shape::Persistent, Access::Read));
        if kind.can_spawn_per_task() {
            out.push(case(Shape::SpawnPerTask, Access::Read));
        }
        if kind.is_shared() {
            out.push(case(Shape::Persistent, Access::ReadWrite));
        }
    }
    out
}

/// The physical reference: a plain copy of the array into memory that is already mapped.
pub fn memcpy(dst: &mut [f64], src: &[f64]) {
    dst.copy_from_slice(src);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_cover_every_transport_and_keep_the_proxy_small() {
        let small = cases(MIB);
        for kind in TransportKind::ALL {
            assert!(small.iter().any(|c| c.kind == kind), "{kind}");
        }
        assert!(
            !cases(64 * MIB)
                .iter()
                .any(|c| c.kind == TransportKind::Proxy)
        );
        let rw: Vec<_> = small
            .iter()
            .filter(|c| c.access == Access::ReadWrite)
            .map(|c| c.kind)
            .collect();
        assert_eq!(rw, [TransportKind::MmapFile, TransportKind::MemfdInherited]);
        let spawned = small
            .iter()
            .filter(|c| c.shape == Shape::SpawnPerTask)
            .count();
        assert_eq!(spawned, 3);
    }

    #[test]
    fn memcpy_copies() {
        let src = [1.0, -2.5, f64::MAX];
        let mut dst = [0.0; 3];
        memcpy(&mut dst, &src);
        assert_eq!(dst, src);
    }
}
