//! Where OpenBLAS is and which of its threading layers are installed beside it, and which
//! layers a bench runs: OpenBLAS's installed ones and the native ones (faer, matrixmultiply),
//! which need no system library.

use std::ffi::OsString;
use std::path::PathBuf;

use parcost::id::layer as names;
use parcost::layer::Library;

/// Debian's layer packages: (name in ids, folder under the multiarch lib dir, package).
pub const DEBIAN_LAYERS: [(&str, &str, &str); 3] = [
    ("pthreads", "openblas-pthread", "libopenblas0-pthread"),
    ("openmp", "openblas-openmp", "libopenblas0-openmp"),
    ("serial", "openblas-serial", "libopenblas0-serial"),
];

/// One OpenBLAS build a bench can be pointed at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    pub name: String,
    /// The folder to put first on the loader's path; `None` runs whatever the loader finds.
    pub lib_dir: Option<PathBuf>,
}

impl Layer {
    /// `LD_LIBRARY_PATH` for a process that must load this layer.
    pub fn ld_library_path(&self) -> Option<OsString> {
        let dir = self.lib_dir.as_ref()?;
        let mut value = dir.clone().into_os_string();
        if let Some(old) = std::env::var_os("LD_LIBRARY_PATH").filter(|o| !o.is_empty()) {
            value.push(":");
            value.push(old);
        }
        Some(value)
    }

    pub fn apply(&self, cmd: &mut std::process::Command) {
        if let Some(path) = self.ld_library_path() {
            cmd.env("LD_LIBRARY_PATH", path);
        }
    }
}

/// The OpenBLAS the suites link, and its layers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenBlas {
    /// The library the linker will take (`libopenblas.so`).
    pub library: PathBuf,
    pub layers: Vec<Layer>,
}

/// The folders searched for `libopenblas.so`: `PARCOST_LIB_DIRS` alone when set (for tests and
/// unusual installs), else `LIBRARY_PATH` and the usual system and Homebrew folders.
pub fn search_dirs() -> Vec<PathBuf> {
    if let Some(dirs) = std::env::var_os("PARCOST_LIB_DIRS") {
        return std::env::split_paths(&dirs).collect();
    }
    let mut dirs: Vec<PathBuf> = std::env::var_os("LIBRARY_PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    let multiarch = format!("/usr/lib/{}-linux-gnu", std::env::consts::ARCH);
    for dir in [
        multiarch.as_str(),
        "/usr/lib64",
        "/usr/lib",
        "/usr/local/lib",
        "/opt/homebrew/opt/openblas/lib",
        "/usr/local/opt/openblas/lib",
    ] {
        dirs.push(PathBuf::from(dir));
    }
    dirs
}

/// Finds the first folder holding a linkable OpenBLAS, and the Debian layers next to it.
pub fn find(dirs: &[PathBuf]) -> Option<OpenBlas> {
    let (dir, library) = dirs.iter().find_map(|dir| {
        ["libopenblas.so", "libopenblas.dylib"]
            .iter()
            .map(|name| dir.join(name))
            .find(|p| p.exists())
            .map(|p| (dir.clone(), p))
    })?;
    let mut layers: Vec<Layer> = DEBIAN_LAYERS
        .iter()
        .filter(|(_, folder, _)| dir.join(folder).join("libopenblas.so.0").exists())
        .map(|(name, folder, _)| Layer {
            name: (*name).to_owned(),
            lib_dir: Some(dir.join(folder)),
        })
        .collect();
    if layers.is_empty() {
        layers.push(Layer {
            name: "default".to_owned(),
            lib_dir: None,
        });
    }
    Some(OpenBlas { library, layers })
}

/// The Debian layers missing from a found OpenBLAS (none on a system that does not split them).
pub fn missing_debian_layers(found: &OpenBlas) -> Vec<&'static str> {
    if found.layers.iter().any(|l| l.lib_dir.is_none()) {
        return Vec::new();
    }
    DEBIAN_LAYERS
        .iter()
        .filter(|(name, _, _)| !found.layers.iter().any(|l| l.name == *name))
        .map(|(_, _, package)| *package)
        .collect()
}

/// The layers `--layer` asked for (all when none is named): OpenBLAS's, then the native
/// libraries to run. An unknown or uninstalled name is an error naming what can run.
pub fn select(openblas: &OpenBlas, names: &[String]) -> anyhow::Result<(Vec<Layer>, Vec<Library>)> {
    if names.is_empty() {
        return Ok((
            openblas.layers.clone(),
            vec![Library::Faer, Library::Matrixmultiply],
        ));
    }
    let (native, blas): (Vec<&String>, Vec<&String>) = names
        .iter()
        .partition(|n| names::NATIVE.contains(&n.as_str()));
    let native: Vec<Library> = [Library::Faer, Library::Matrixmultiply]
        .into_iter()
        .filter(|l| native.iter().any(|n| *n == l.word()))
        .collect();
    let blas: Vec<String> = blas.into_iter().cloned().collect();
    let layers = if blas.is_empty() {
        Vec::new()
    } else {
        openblas.select(&blas)?
    };
    Ok((layers, native))
}

impl OpenBlas {
    pub fn layer_names(&self) -> Vec<&str> {
        self.layers.iter().map(|l| l.name.as_str()).collect()
    }

    /// The build the native layers' runs load for their serial references: serial when
    /// installed (no threads of its own beside the ones measured), else the first.
    pub fn reference_layer(&self) -> Layer {
        self.layers
            .iter()
            .find(|l| l.name == names::SERIAL)
            .or(self.layers.first())
            .cloned()
            .unwrap_or(Layer {
                name: "default".to_owned(),
                lib_dir: None,
            })
    }

    /// The layers asked for, all when none is named; an unknown name is an error naming the
    /// installed ones.
    pub fn select(&self, names: &[String]) -> anyhow::Result<Vec<Layer>> {
        if names.is_empty() {
            return Ok(self.layers.clone());
        }
        names
            .iter()
            .map(|name| {
                self.layers
                    .iter()
                    .find(|l| &l.name == name)
                    .cloned()
                    .ok_or_else(|| {
                        let package = DEBIAN_LAYERS
                            .iter()
                            .find(|(n, _, _)| n == name)
                            .map(|(_, _, p)| format!("; on Debian: apt-get install {p}"))
                            .unwrap_or_default();
                        anyhow::anyhow!(
                            "OpenBLAS layer {name:?} is not installed (installed: {}; and the \
                             native layers {}){package}",
                            self.layer_names().join(", "),
                            names::NATIVE.join(", ")
                        )
                    })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A temporary tree of empty files, removed when the returned guard drops.
    fn tree(files: &[&str]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_path_buf();
        for f in files {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, b"").expect("touch");
        }
        (dir, root)
    }

    #[test]
    fn debian_layers_are_found_beside_the_library() {
        let (_dir, root) = tree(&[
            "lib/libopenblas.so",
            "lib/openblas-pthread/libopenblas.so.0",
            "lib/openblas-openmp/libopenblas.so.0",
        ]);
        let found = find(&[root.join("none"), root.join("lib")]).expect("found");
        assert_eq!(found.library, root.join("lib/libopenblas.so"));
        assert_eq!(found.layer_names(), ["pthreads", "openmp"]);
        assert_eq!(missing_debian_layers(&found), ["libopenblas0-serial"]);
        let err = found.select(&["serial".into()]).expect_err("not installed");
        let text = err.to_string();
        assert!(text.contains("\"serial\" is not installed"), "{text}");
        assert!(text.contains("libopenblas0-serial"), "{text}");
        assert_eq!(
            found.select(&["openmp".into()]).expect("installed").len(),
            1
        );
    }

    #[test]
    fn native_layers_are_selected_beside_openblas_ones() {
        let (_dir, root) = tree(&[
            "lib/libopenblas.so",
            "lib/openblas-pthread/libopenblas.so.0",
            "lib/openblas-serial/libopenblas.so.0",
        ]);
        let found = find(&[root.join("lib")]).expect("found");
        let (blas, native) = select(&found, &[]).expect("all");
        assert_eq!(blas.len(), 2);
        assert_eq!(native, [Library::Faer, Library::Matrixmultiply]);
        let (blas, native) = select(&found, &["faer".into()]).expect("faer");
        assert!(blas.is_empty(), "only faer was asked for");
        assert_eq!(native, [Library::Faer]);
        let (blas, native) =
            select(&found, &["matrixmultiply".into(), "pthreads".into()]).expect("both");
        assert_eq!(
            (blas.len(), native.as_slice()),
            (1, &[Library::Matrixmultiply][..])
        );
        assert_eq!(found.reference_layer().name, "serial");
        let err = select(&found, &["mkl".into()]).expect_err("unknown");
        assert!(err.to_string().contains("faer, matrixmultiply"), "{err}");
    }

    #[test]
    fn a_plain_install_is_one_default_layer() {
        let (_dir, root) = tree(&["lib/libopenblas.so"]);
        let found = find(&[root.join("lib")]).expect("found");
        assert_eq!(found.layer_names(), ["default"]);
        assert!(missing_debian_layers(&found).is_empty());
        assert_eq!(found.layers[0].ld_library_path(), None);
    }

    #[test]
    fn no_library_is_none() {
        let (_dir, root) = tree(&["lib/openblas-openmp/libopenblas.so.0"]);
        assert_eq!(find(&[root.join("lib")]), None);
    }
}
