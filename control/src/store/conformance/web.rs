//! Checks of the web flows' tickets and the accounts' Marketplace OAuth
//! tokens: a ticket is found only under its kind and until it expires, a
//! taken ticket is gone (single use, one winner of a race), and a refresh
//! token is claimed by one holder at a time and replaced only while it is
//! still the stored one.

use super::*;
use crate::store::{AccountTokens, Ticket, TicketKind};

fn ticket(kind: TicketKind, secret: &str, expires_at: Timestamp) -> Ticket {
    Ticket {
        kind,
        hash: TokenHash::of(secret),
        sealed: Sealed(format!("sealed {secret}").into_bytes()),
        expires_at,
    }
}

pub async fn web_tickets(store: &dyn Store) {
    let state = ticket(TicketKind::InstallState, "state-1", at(10_000));
    store.put_ticket(state.clone()).await.expect("put");
    let hash = TokenHash::of("state-1");
    assert_eq!(
        store
            .get_ticket(TicketKind::InstallState, &hash, at(0))
            .await
            .expect("get"),
        Some(state.clone())
    );
    assert_eq!(
        store
            .get_ticket(TicketKind::ConsoleSession, &hash, at(0))
            .await
            .expect("get under another kind"),
        None,
        "a ticket is found only under its own kind"
    );
    assert_eq!(
        store
            .get_ticket(TicketKind::InstallState, &hash, at(10_000))
            .await
            .expect("get expired"),
        None,
        "a ticket is gone at its expiry"
    );

    // Replacing moves the expiry (a session's idle timeout).
    let moved = ticket(TicketKind::InstallState, "state-1", at(20_000));
    store.put_ticket(moved.clone()).await.expect("replace");
    assert_eq!(
        store
            .get_ticket(TicketKind::InstallState, &hash, at(15_000))
            .await
            .expect("get moved"),
        Some(moved.clone())
    );

    // Single use: the first take gets it, the second nothing.
    assert_eq!(
        store
            .take_ticket(TicketKind::InstallState, &hash, at(1))
            .await
            .expect("take"),
        Some(moved)
    );
    assert_eq!(
        store
            .take_ticket(TicketKind::InstallState, &hash, at(2))
            .await
            .expect("take again"),
        None
    );

    // An expired ticket is not handed out by take either.
    store
        .put_ticket(ticket(TicketKind::PendingInstall, "late", at(100)))
        .await
        .expect("put");
    assert_eq!(
        store
            .take_ticket(TicketKind::PendingInstall, &TokenHash::of("late"), at(100))
            .await
            .expect("take expired"),
        None
    );

    // Racing takes: exactly one winner.
    store
        .put_ticket(ticket(TicketKind::InstallState, "raced", at(50_000)))
        .await
        .expect("put");
    let raced = TokenHash::of("raced");
    let takes = futures::future::join_all(
        (0..8).map(|_| store.take_ticket(TicketKind::InstallState, &raced, at(1))),
    )
    .await;
    let winners = takes
        .into_iter()
        .map(|t| t.expect("take"))
        .filter(Option::is_some)
        .count();
    assert_eq!(winners, 1, "one of the racing takes gets the ticket");

    // The sweep forgets expired tickets only.
    store
        .put_ticket(ticket(TicketKind::ConsoleSession, "old", at(500)))
        .await
        .expect("put");
    store
        .put_ticket(ticket(TicketKind::ConsoleSession, "live", at(90_000)))
        .await
        .expect("put");
    assert!(store.sweep_tickets(at(60_000)).await.expect("sweep") >= 1);
    assert!(
        store
            .get_ticket(
                TicketKind::ConsoleSession,
                &TokenHash::of("live"),
                at(60_000)
            )
            .await
            .expect("get")
            .is_some()
    );
}

fn tokens(account: &str, refresh: &str, now: Timestamp) -> AccountTokens {
    AccountTokens {
        zoom_account_id: account.into(),
        client_id: "marketplace-app".into(),
        sealed_access_token: Sealed(format!("access for {refresh}").into_bytes()),
        access_expires_at: now.saturating_add_millis(3_600_000),
        sealed_refresh_token: Sealed(refresh.as_bytes().to_vec()),
        refresh_token_hash: TokenHash::of(refresh),
        updated_at: now,
    }
}

pub async fn account_token_refresh(store: &dyn Store) {
    let account = new_id("zacct");
    assert_eq!(store.account_tokens(&account).await.expect("read"), None);
    let first = tokens(&account, "refresh-1", at(0));
    store
        .put_account_tokens(first.clone())
        .await
        .expect("store install tokens");
    assert_eq!(
        store.account_tokens(&account).await.expect("read"),
        Some(first.clone())
    );

    // Racing claims on one refresh token: one holder.
    let spent = TokenHash::of("refresh-1");
    let claims = futures::future::join_all((0..8).map(|i| {
        let holder = format!("replica-{i}");
        let spent = spent.clone();
        let account = account.clone();
        async move {
            store
                .claim_token_refresh(&account, &spent, &holder, at(1), LEASE)
                .await
                .map(|won| won.then_some(holder))
        }
    }))
    .await;
    let holders: Vec<String> = claims
        .into_iter()
        .filter_map(|c| c.expect("claim"))
        .collect();
    assert_eq!(holders.len(), 1, "one claim on a refresh token wins");
    assert!(
        !store
            .claim_token_refresh(&account, &spent, "other", at(LEASE_MS - 1), LEASE)
            .await
            .expect("claim while held"),
        "a held claim is not taken before it expires"
    );

    // The refresh stores the rotated token; the spent one can never be
    // claimed or completed again.
    let second = tokens(&account, "refresh-2", at(2));
    assert!(
        store
            .complete_token_refresh(&spent, second.clone())
            .await
            .expect("complete")
    );
    assert_eq!(
        store.account_tokens(&account).await.expect("read"),
        Some(second.clone())
    );
    assert!(
        !store
            .claim_token_refresh(&account, &spent, "late", at(3), LEASE)
            .await
            .expect("claim spent"),
        "a spent refresh token cannot be claimed"
    );
    assert!(
        !store
            .complete_token_refresh(&spent, tokens(&account, "refresh-x", at(4)))
            .await
            .expect("complete spent"),
        "tokens from a spent refresh token are dropped"
    );
    assert_eq!(
        store.account_tokens(&account).await.expect("read"),
        Some(second),
        "the stored token is still the one the first refresh returned"
    );

    // A released claim may be taken again; an expired one by anybody.
    let current = TokenHash::of("refresh-2");
    assert!(
        store
            .claim_token_refresh(&account, &current, "a", at(10), LEASE)
            .await
            .expect("claim")
    );
    store
        .release_token_refresh(&account, "a")
        .await
        .expect("release");
    assert!(
        store
            .claim_token_refresh(&account, &current, "b", at(11), LEASE)
            .await
            .expect("claim after release")
    );
    assert!(
        store
            .claim_token_refresh(&account, &current, "c", at(11 + LEASE_MS), LEASE)
            .await
            .expect("claim after expiry"),
        "an expired claim is taken over"
    );

    // A reinstall replaces the tokens and drops the claim.
    store
        .put_account_tokens(tokens(&account, "refresh-3", at(20)))
        .await
        .expect("reinstall");
    assert!(
        store
            .claim_token_refresh(&account, &TokenHash::of("refresh-3"), "d", at(21), LEASE)
            .await
            .expect("claim after reinstall")
    );

    // Deauthorization forgets them.
    assert!(store.delete_account_tokens(&account).await.expect("delete"));
    assert!(!store.delete_account_tokens(&account).await.expect("again"));
    assert_eq!(store.account_tokens(&account).await.expect("read"), None);
}
