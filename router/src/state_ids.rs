//! The consistency contract through a router (DESIGN §5, §10): a client keeps one state ID
//! per nameservice, and the router hands each nameservice only its own.
//!
//! HDFS-17156 was a router that forwarded a state ID of the wrong namespace: observers then
//! answered from states older than what the client had seen, and about 1% of jobs failed.
//! Here a call to nameservice X carries the client's X entry as its `last_seen_state_id`,
//! never the client's scalar or another entry; a client with no X entry has never been
//! answered by X through a router, so its read goes to X's active (linearizable, hence at
//! least as new as anything an msync could have promised), and the answer gives it an entry.

use std::collections::HashMap;

use raftfs_core::federation::NameserviceId;
use raftfs_proto as pb;

/// The request header a nameservice is sent for a client's call.
pub fn forwarded(
    to: &NameserviceId,
    from_client: Option<&pb::RequestHeader>,
    wrong_entry: bool,
) -> pb::RequestHeader {
    let Some(h) = from_client else {
        return pb::RequestHeader::default();
    };
    // An entry of 0 says nothing was seen (a refusal before anything was journaled): as none.
    let own = h.state_ids.get(to.as_str()).copied().filter(|id| *id > 0);
    let (last_seen, observer_read) = if wrong_entry {
        // The deliberate bug (debug builds only): an older state ID than the client saw of
        // this nameservice, trusted as if it were this one's.
        (
            older_entry(to, own.unwrap_or(0), &h.state_ids),
            h.observer_read,
        )
    } else {
        (own.unwrap_or(0), h.observer_read && own.is_some())
    };
    pb::RequestHeader {
        client_id: h.client_id.clone(),
        call_id: h.call_id,
        last_seen_state_id: last_seen,
        observer_read,
        state_ids: HashMap::new(),
    }
}

/// The debug switch's wrong entry: another nameservice's, where one is older than `own`
/// (HDFS-17156's router handed out another namespace's older state ID), else none (0). Always
/// older, never newer: a newer one would only make the call wait, which no checker could
/// tell from a slow observer.
fn older_entry(to: &NameserviceId, own: u64, ids: &HashMap<String, u64>) -> u64 {
    ids.iter()
        .filter(|(name, id)| name.as_str() != to.as_str() && **id < own)
        .map(|(_, id)| *id)
        .min()
        .unwrap_or(0)
}

/// The entry of a client's map that carries the newest mount table it was routed by: the
/// keeper's state ID the router had read the table at. Not a nameservice's name (those begin
/// with a letter), so never forwarded, msynced or renewed. A client carries it from router
/// to router like any entry: a router with an older table reads it again before the call,
/// so a client that added a mount (or was handed a token of one that did) is routed by it,
/// and no client is ever routed by an older table than before (monotonic, as §5's reads).
pub const TABLE_ENTRY: &str = "@mount-table";

/// The header of a router's answer: the state ID of each nameservice the call reached, and
/// the mount table's entry (`table_at`, the keeper state the router's table was read at).
pub fn answered<'a>(
    reached: impl IntoIterator<Item = (&'a NameserviceId, u64)>,
    table_at: u64,
) -> pb::ResponseHeader {
    let mut state_ids: HashMap<String, u64> = reached
        .into_iter()
        .filter(|(_, id)| *id > 0)
        .map(|(ns, id)| (ns.as_str().to_owned(), id))
        .collect();
    let state_id = state_ids.values().copied().max().unwrap_or(0);
    if table_at > 0 {
        state_ids.insert(TABLE_ENTRY.to_owned(), table_at);
    }
    pb::ResponseHeader {
        state_id,
        state_ids,
    }
}

/// The table entry a client holds (0: none).
pub fn table_seen(header: Option<&pb::RequestHeader>) -> u64 {
    header
        .and_then(|h| h.state_ids.get(TABLE_ENTRY).copied())
        .unwrap_or(0)
}

/// The nameservices a client has been answered by (those in its header), which an `msync`
/// and a lease renewal reach: HDFS-16452 and HDFS-17111 sent them to every nameservice.
pub fn touched(header: Option<&pb::RequestHeader>) -> Vec<String> {
    let mut names: Vec<String> = header
        .map(|h| h.state_ids.keys().cloned().collect())
        .unwrap_or_default();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(s: &str) -> NameserviceId {
        NameserviceId::parse(s).expect("name")
    }

    fn header(ids: &[(&str, u64)], scalar: u64, observer: bool) -> pb::RequestHeader {
        pb::RequestHeader {
            client_id: vec![7; 16],
            call_id: 42,
            last_seen_state_id: scalar,
            observer_read: observer,
            state_ids: ids.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
        }
    }

    #[test]
    fn each_nameservice_gets_its_own_entry_never_the_scalar_or_another() {
        let h = header(&[("ns1", 90), ("ns2", 5)], 90, true);
        let to1 = forwarded(&ns("ns1"), Some(&h), false);
        let to2 = forwarded(&ns("ns2"), Some(&h), false);
        assert_eq!((to1.last_seen_state_id, to1.observer_read), (90, true));
        assert_eq!((to2.last_seen_state_id, to2.observer_read), (5, true));
        // The client's identity passes through, for the nameservice's retry cache.
        assert_eq!((to1.client_id.clone(), to1.call_id), (vec![7; 16], 42));
        assert!(to1.state_ids.is_empty());
    }

    #[test]
    fn a_nameservice_the_client_never_heard_from_is_read_on_its_active() {
        let h = header(&[("ns1", 90), ("ns2", 0)], 90, true);
        let to3 = forwarded(&ns("ns3"), Some(&h), false);
        assert_eq!((to3.last_seen_state_id, to3.observer_read), (0, false));
        // An entry of 0 (a refusal that reflected no state) is none.
        let to2 = forwarded(&ns("ns2"), Some(&h), false);
        assert_eq!((to2.last_seen_state_id, to2.observer_read), (0, false));
        assert!(!answered([(&ns("ns2"), 0)], 0).state_ids.contains_key("ns2"));
    }

    #[test]
    fn the_debug_switch_forwards_an_older_entry_and_trusts_it() {
        let h = header(&[("ns1", 90), ("ns2", 5)], 90, true);
        let to1 = forwarded(&ns("ns1"), Some(&h), true);
        assert_eq!((to1.last_seen_state_id, to1.observer_read), (5, true));
        let to2 = forwarded(&ns("ns2"), Some(&h), true);
        assert_eq!((to2.last_seen_state_id, to2.observer_read), (0, true));
    }

    #[test]
    fn an_answer_names_every_nameservice_it_reached() {
        let (a, b) = (ns("ns1"), ns("ns2"));
        let h = answered([(&a, 12), (&b, 30)], 99);
        assert_eq!(
            h.state_id, 30,
            "the table's entry is no nameservice's state"
        );
        assert_eq!(h.state_ids.get("ns1"), Some(&12));
        assert_eq!(h.state_ids.get(TABLE_ENTRY), Some(&99));
        assert!(
            NameserviceId::parse(TABLE_ENTRY).is_err(),
            "never a nameservice's name"
        );
        assert_eq!(
            touched(Some(&header(&[("b", 1), ("a", 2)], 0, false))),
            ["a", "b"]
        );
    }
}
