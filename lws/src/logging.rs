//! lws's log lines go to the `log` crate, never straight to stderr.
//!
//! Each line is logged with target `lws` at the level lws gave it (errors
//! as errors, warnings as warnings, notices and user lines as info, the
//! rest as debug), without lws's own timestamp and level letter. A line
//! about a connection of ours starts with lws's tag of it (`[wsisrv|3|..]`)
//! and gets our connection id in front: `conn 12: [wsisrv|3|..]: ...`.
//!
//! Which lws levels are produced at all is lws's own global switch, set
//! with [`set_lws_log_level`]; the default is errors and warnings
//! (everything with `LWS_RS_TRACE` in the environment). Our build of lws
//! compiles in errors, warnings, notices and user lines only.

use lws_sys as sys;
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::CStr;
use std::os::raw::{c_char, c_int};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

/// Set once the user chose a level: context creation leaves it alone.
static CHOSEN: AtomicBool = AtomicBool::new(false);

/// Routes lws's lines through `log` at the default levels, unless
/// [`set_lws_log_level`] chose others. Called by every context creation;
/// runs once.
pub(crate) fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if CHOSEN.load(Ordering::SeqCst) {
            return;
        }
        let level = if std::env::var_os("LWS_RS_TRACE").is_some() {
            log::LevelFilter::Trace
        } else {
            log::LevelFilter::Warn
        };
        apply(level);
    });
}

/// Chooses which of lws's own log lines are produced (they reach the `log`
/// crate with target `lws`): `Error` for lws errors only, `Warn` (the
/// default) adds warnings, `Info` notices and user lines, `Debug` and
/// `Trace` every level lws has (our build of lws compiles in only errors,
/// warnings, notices and user lines). `Off` silences lws.
///
/// lws's switch is one per process, for every context; this may be called
/// at any time, from any thread. The `log` crate's own filter still
/// applies after it.
///
/// # Examples
/// ```
/// // lws's notices (e.g. each listener it binds) become info lines.
/// lws::set_lws_log_level(log::LevelFilter::Info);
/// ```
pub fn set_lws_log_level(level: log::LevelFilter) {
    CHOSEN.store(true, Ordering::SeqCst);
    apply(level);
}

fn apply(level: log::LevelFilter) {
    use log::LevelFilter as L;
    let mask = match level {
        L::Off => 0,
        L::Error => sys::LLL_ERR,
        L::Warn => sys::LLL_ERR | sys::LLL_WARN,
        L::Info => sys::LLL_ERR | sys::LLL_WARN | sys::LLL_NOTICE | sys::LLL_USER,
        L::Debug | L::Trace => (1 << sys::LLL_COUNT) - 1,
    };
    // SAFETY: sets lws's global log mask and a static emit function.
    unsafe { sys::lws_set_log_level(mask as c_int, Some(emit)) };
}

thread_local! {
    /// Our connection ids by lws's tag of their wsi (its kind and number),
    /// for this thread's contexts: lws logs on the thread that services.
    /// `None` when two live connections share a tag (two contexts on one
    /// thread): their lines keep only lws's tag.
    static CONN_IDS: RefCell<HashMap<TagKey, Option<u64>>> = RefCell::new(HashMap::new());
}

/// lws's tag of a wsi, `[wsisrv|3|...]`, reduced to its kind and number.
type TagKey = (u8, u32);

/// The key of the tag `text` starts with, if it is a connection's.
fn tag_key(text: &str) -> Option<TagKey> {
    let rest = text.strip_prefix('[')?;
    let (kind, rest) = rest.split_once('|')?;
    let kind = match kind {
        "wsi" => 0,
        "wsisrv" => 1,
        "wsicli" => 2,
        _ => return None,
    };
    let number = rest.split(['|', ']']).next()?;
    Some((kind, u32::from_str_radix(number, 16).ok()?))
}

/// The tag lws gave `wsi`.
fn wsi_tag_key(wsi: *mut sys::lws) -> Option<TagKey> {
    // SAFETY: callers pass a live wsi; lws returns a NUL-terminated string
    // it owns (or null).
    let tag = unsafe { sys::lws_wsi_tag(wsi) };
    if tag.is_null() {
        return None;
    }
    // SAFETY: as above; read before lws can change it.
    tag_key(&unsafe { CStr::from_ptr(tag) }.to_string_lossy())
}

/// Notes that `wsi` is our connection `id`, so lws's lines about it name it.
pub(crate) fn bind(wsi: *mut sys::lws, id: u64) {
    let Some(key) = wsi_tag_key(wsi) else { return };
    // try_with: a context dropped by a thread-local destructor may run after
    // this thread's map is gone (then there is nothing to name anyway).
    let _ = CONN_IDS.try_with(|ids| {
        let mut ids = ids.borrow_mut();
        match ids.get(&key) {
            Some(Some(known)) if *known != id => {
                ids.insert(key, None); // shared by two: name neither
            }
            Some(_) => {}
            None => {
                ids.insert(key, Some(id));
            }
        }
    });
}

/// Forgets `wsi` (lws is freeing it).
pub(crate) fn unbind(wsi: *mut sys::lws) {
    let Some(key) = wsi_tag_key(wsi) else { return };
    // try_with, as in bind: lws frees the wsi of a context dropped during
    // thread-local destruction, possibly after the map.
    let _ = CONN_IDS.try_with(|ids| ids.borrow_mut().remove(&key));
}

/// `line` without lws's `[timestamp] L: ` prefix.
fn strip_prefix(line: &str) -> &str {
    let Some(rest) = line.strip_prefix('[') else {
        return line;
    };
    match rest.split_once("] ") {
        Some((_, rest)) if rest.len() > 3 && rest.as_bytes()[1] == b':' => &rest[3..],
        _ => line,
    }
}

/// lws lines logged as errors that describe normal operation (lws 4.3.5
/// logs every adopt with initial data at error level).
const BENIGN: &[&str] = &["adopt_socket_readbuf: calling service"];

unsafe extern "C" fn emit(level: c_int, line: *const c_char) {
    crate::panic::guard("the lws log hook", (), || {
        if line.is_null() {
            return;
        }
        // SAFETY: lws passes a NUL-terminated line.
        let text = unsafe { CStr::from_ptr(line) }.to_string_lossy();
        let text = strip_prefix(text.trim_end());
        let conn = tag_key(text).and_then(|key| {
            CONN_IDS
                .try_with(|ids| ids.borrow().get(&key).copied().flatten())
                .ok()
                .flatten()
        });
        let level = level as u32;
        let level = if BENIGN.iter().any(|b| text.contains(b)) {
            log::Level::Debug
        } else if level & sys::LLL_ERR != 0 {
            log::Level::Error
        } else if level & sys::LLL_WARN != 0 {
            log::Level::Warn
        } else if level & (sys::LLL_NOTICE | sys::LLL_USER) != 0 {
            log::Level::Info
        } else {
            log::Level::Debug
        };
        match conn {
            Some(id) => log::log!(target: "lws", level, "conn {id}: {text}"),
            None => log::log!(target: "lws", level, "{text}"),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lws_prefix_is_stripped() {
        assert_eq!(
            strip_prefix("[2026/12/03 08:42:07:2547] N: lws_create_context: LWS: 4.3.5"),
            "lws_create_context: LWS: 4.3.5"
        );
        assert_eq!(
            strip_prefix("[wsisrv|0|adopted]: x"),
            "[wsisrv|0|adopted]: x"
        );
        assert_eq!(strip_prefix("plain"), "plain");
    }

    #[test]
    fn connection_tags_are_recognised() {
        assert_eq!(tag_key("[wsisrv|1f|adopted]: closing"), Some((1, 0x1f)));
        assert_eq!(tag_key("[wsicli|0|WS/h1/127.0.0.1]"), Some((2, 0)));
        assert_eq!(tag_key("[wsi|3]"), Some((0, 3)));
        assert_eq!(tag_key("[vh|0|server|127.0.0.1]: bind"), None);
        assert_eq!(tag_key("lws_create_context"), None);
    }
}
