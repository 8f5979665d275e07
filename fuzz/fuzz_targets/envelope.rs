//! Envelope parsing and opening: errors or round-trips; opening garbage
//! under a real session never panics and never succeeds without the keys.
#![no_main]
use std::sync::OnceLock;

use accord_core::Keypair;
use accord_core::channel::{Bundle, Draft, Envelope, ExchangeSecret, Session};
use libfuzzer_sys::fuzz_target;

struct Fixture {
    sender: Keypair,
    rx: Session,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let sender = Keypair::from_seed(&[1; 32]).expect("fixed seed");
        let recipient = Keypair::from_seed(&[2; 32]).expect("fixed seed");
        let x = ExchangeSecret::generate(&[3; 32]);
        let t = |s| accord_core::Timestamp::parse(s).expect("fixed time");
        let b = Bundle::sign(
            &recipient,
            &x,
            t("2026-01-01T00:00:00.000000Z"),
            t("2026-01-02T00:00:00.000000Z"),
        );
        let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
        let mut tx = Session::initiate(sender.agent_id(), &b, [4; 16], 0, &mut rng).expect("setup");
        let draft = Draft {
            id: accord_core::Uuid::nil(),
            timestamp_ms: 0,
            msg_type: "message".into(),
            text: String::new(),
            payload: accord_core::Map::new(),
        };
        let (env, _) = tx.seal(&sender, draft).expect("seal");
        let rx = Session::respond(recipient.agent_id(), &x, &env, 0).expect("respond");
        Fixture { sender, rx }
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(env) = Envelope::parse(data) {
        let again = Envelope::parse(&env.to_bytes()).expect("a parsed envelope re-parses");
        assert_eq!(again, env);
        let f = fixture();
        let mut rx = f.rx.clone();
        // Without the sender's keys nothing the fuzzer invents may open.
        assert!(rx.open(&env, f.sender.public()).is_err());
    }
});
