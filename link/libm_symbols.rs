//! `log`, `exp` and `expm1` for the per-message programs (lda, bsfilter),
//! so that neither loads libm.so.6. Included by their main.rs files only:
//! the servers and tools built on the filter library keep the system's.
//!
//! Why: the filter's programs run once per message (`bsfilter --pipe` from
//! procmail, every `lda` delivery), so a fresh process's start-up is part
//! of each message's cost, and these three functions — the scores'
//! logarithms and exponentials, and SQLite's `log` — are all the programs
//! took from libm. Defined here (musl's algorithms, through the `libm`
//! crate), they resolve every call inside the program, and the linker,
//! which links libraries only as needed, leaves libm out: one library less
//! to open, map, relocate and search, ~5 % of a delivery (BENCHMARKS.md).
//! Both implementations are within an ulp of the exact result (tested
//! against the system's libm below).

#[unsafe(no_mangle)]
extern "C" fn log(x: f64) -> f64 {
    libm::log(x)
}

#[unsafe(no_mangle)]
extern "C" fn exp(x: f64) -> f64 {
    libm::exp(x)
}

#[unsafe(no_mangle)]
extern "C" fn expm1(x: f64) -> f64 {
    libm::expm1(x)
}

#[cfg(test)]
mod tests {
    /// The system's libm, loaded by hand: inside this crate `log` is ours.
    fn system_function(name: &std::ffi::CStr) -> extern "C" fn(f64) -> f64 {
        // SAFETY: dlopen/dlsym with valid C strings; libm.so.6's `log`,
        // `exp` and `expm1` have exactly this signature.
        unsafe {
            let libm = libc::dlopen(c"libm.so.6".as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
            assert!(!libm.is_null(), "the system's libm.so.6 loads");
            let f = libc::dlsym(libm, name.as_ptr());
            assert!(!f.is_null(), "libm.so.6 has {name:?}");
            std::mem::transmute::<*mut libc::c_void, extern "C" fn(f64) -> f64>(f)
        }
    }

    fn ulps(a: f64, b: f64) -> u64 {
        (a.to_bits() as i64).abs_diff(b.to_bits() as i64)
    }

    #[test]
    fn within_an_ulp_of_the_system_libm() {
        let (system_log, system_exp, system_expm1) = (
            system_function(c"log"),
            system_function(c"exp"),
            system_function(c"expm1"),
        );
        // the ranges the scores use: probabilities in (0, 1) and their
        // complements, chi-square sums, tails' logarithms
        let mut x = 1e-300f64;
        while x < 1e300 {
            assert!(ulps(super::log(x), system_log(x)) <= 1, "log({x:e})");
            x *= 1.37;
        }
        let mut y = -700.0f64;
        while y < 700.0 {
            assert!(ulps(super::exp(y), system_exp(y)) <= 1, "exp({y})");
            assert!(ulps(super::expm1(y), system_expm1(y)) <= 1, "expm1({y})");
            y += 0.173;
        }
        assert_eq!(super::log(1.0), 0.0);
        assert!(super::log(0.0) == f64::NEG_INFINITY && super::log(-1.0).is_nan());
        assert_eq!(super::exp(0.0), 1.0);
        assert_eq!(super::expm1(0.0), 0.0);
    }
}
