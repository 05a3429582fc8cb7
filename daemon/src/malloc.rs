//! One malloc arena for the whole daemon (glibc only), so that memory the
//! transfers free is memory they can allocate again, whichever thread asks.
//!
//! glibc gives each thread that allocates an arena of its own (up to eight
//! per core). A downloaded chunk is allocated by the worker thread that
//! polled its connection and freed, once its part has landed, into that
//! same arena; a worker allocating next grows its own arena instead of
//! reusing the space. Each arena keeps its high-water mark, so under load
//! the daemon's RSS was the byte budget plus what the other arenas held on
//! to: 312–368 MiB in the concurrency bench (budget 256 MiB) and 371–408 MiB
//! with 128 transfers in the capacity bench. With one arena the same
//! concurrency bench peaked at 241 MiB. The price is the arena's lock:
//! allocations that the per-thread cache (tcache) does not serve wait on it,
//! 5.6 % of the daemon's CPU under the directory bench (0.9 % with an arena
//! per thread), 2–5 us more per gRPC lookup.
//!
//! An operator's own `MALLOC_ARENA_MAX`, or an `arena_max` in
//! `GLIBC_TUNABLES`, is left as it is. This is the crate's only `unsafe`:
//! one call to `mallopt` before any thread starts.

#![allow(unsafe_code)]

/// Arenas the daemon asks glibc for.
pub const ARENAS: i32 = 1;

/// The arena limit to set, given the process's `MALLOC_ARENA_MAX` and
/// `GLIBC_TUNABLES` variables: none when the operator chose one.
pub fn arena_limit(malloc_arena_max: Option<&str>, glibc_tunables: Option<&str>) -> Option<i32> {
    let chosen_by_tunable = glibc_tunables.is_some_and(|tunables| {
        tunables
            .split(':')
            .any(|setting| setting.trim_start().starts_with("glibc.malloc.arena_max"))
    });
    if malloc_arena_max.is_some() || chosen_by_tunable {
        return None;
    }
    Some(ARENAS)
}

/// Applies [`arena_limit`] to this process. Call before the runtime starts
/// any thread. Returns the limit set, if any.
pub fn limit_arenas() -> Option<i32> {
    let malloc_arena_max = std::env::var("MALLOC_ARENA_MAX").ok();
    let glibc_tunables = std::env::var("GLIBC_TUNABLES").ok();
    let limit = arena_limit(malloc_arena_max.as_deref(), glibc_tunables.as_deref())?;
    set_arena_max(limit).then_some(limit)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set_arena_max(arenas: i32) -> bool {
    // SAFETY: mallopt only changes a malloc parameter; it takes no pointer
    // and is called before this process starts any other thread.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, arenas) == 1 }
}

/// Other allocators (musl, other systems) have no arena setting.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_arena_max(_arenas: i32) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_operators_choice_is_left_alone() {
        assert_eq!(arena_limit(None, None), Some(ARENAS));
        assert_eq!(arena_limit(Some("4"), None), None);
        assert_eq!(arena_limit(None, Some("glibc.malloc.arena_max=2")), None);
        assert_eq!(
            arena_limit(
                None,
                Some("glibc.malloc.tcache_count=0:glibc.malloc.arena_max=8")
            ),
            None
        );
        assert_eq!(
            arena_limit(None, Some("glibc.malloc.tcache_count=0")),
            Some(ARENAS),
            "other tunables do not choose the arenas"
        );
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn glibc_takes_the_arena_limit() {
        assert!(set_arena_max(ARENAS));
    }

    proptest! {
        /// Whatever the tunables say, the limit is set exactly when neither
        /// variable chose the arenas.
        #[test]
        fn the_limit_is_set_only_when_nobody_chose(
            arena_max in proptest::option::of("[0-9]{1,3}"),
            tunables in proptest::option::of(
                prop::collection::vec("glibc\\.malloc\\.(arena_max|tcache_count|mmap_threshold)=[0-9]{1,4}", 0..4)
                    .prop_map(|settings| settings.join(":"))
            ),
        ) {
            let chose = arena_max.is_some()
                || tunables.as_deref().is_some_and(|t| t.contains("arena_max"));
            let limit = arena_limit(arena_max.as_deref(), tunables.as_deref());
            prop_assert_eq!(limit.is_none(), chose);
        }
    }
}
