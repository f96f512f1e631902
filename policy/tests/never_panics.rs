//! Property test: decisions never panic, whatever the repositories, tags, names, groups and claims, and
//! the filters always agree with `decide`.

#![allow(clippy::unwrap_used)] // in tests, unwrap is the assertion

use policy::{Action, ActionSet, AuthMethod, Principal, Request, Source};

const LONG: &str = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn string(&mut self) -> String {
        const PIECES: &[&str] = &[
            "a", "team-a", "/", "//", "..", ".", "*", "**", "v1", "latest", ":", "sha256:", "é", "\u{0}",
            "\u{202e}", "%2e", " ", "{", "[", "\\", "-rc", "users/", "public/", "apps/", LONG,
        ];
        (0..self.below(6)).map(|_| PIECES[self.below(PIECES.len())]).collect()
    }
    fn json(&mut self, depth: u32) -> serde_json::Value {
        match if depth > 3 { self.below(4) } else { self.below(7) } {
            0 => serde_json::Value::Null,
            1 => serde_json::Value::Bool(self.below(2) == 0),
            2 => serde_json::json!(self.next() as i64),
            3 => serde_json::Value::String(self.string()),
            4 => serde_json::json!(f64::from(self.below(1000) as u32) / 7.0),
            5 => serde_json::Value::Array((0..self.below(4)).map(|_| self.json(depth + 1)).collect()),
            _ => serde_json::Value::Object(
                (0..self.below(4)).map(|_| (self.string(), self.json(depth + 1))).collect(),
            ),
        }
    }
}

const POLICY: &str = r#"
grants:
  - { id: g1, groups: [team-a], repositories: ["team-a/**", "{x,y}/*"], actions: [pull, push] }
  - { id: g2, authenticated: true, anonymous: true, repositories: ["public/*"], tags: ["v*"], actions: [pull] }
  - id: g3
    authenticated: true
    repositories: ["**"]
    actions: ["*"]
    when: 'principal.claims.env == "ci" && request.tag.startsWith("v") && size(principal.groups) < 3'
  - id: g4
    users: [a, "é"]
    repositories: ["users/**"]
    actions: [pull]
    when: 'ip_in(client.ip, "10.0.0.0/8") || glob(request.repository + "/**", request.path) || "x" in principal.claims'
denies:
  - id: d1
    authenticated: true
    repositories: ["**"]
    tags: ["*-rc*"]
    actions: [push]
    when: 'principal.claims.level > 2'
accessControl:
  repositories:
    "**": { defaultPolicy: [read] }
    "tmp/**": { anonymousPolicy: [read, create] }
"#;

#[test]
fn arbitrary_inputs_never_panic_and_filters_agree() {
    let p = policy::compile(&[Source { name: "p.yaml", text: POLICY }]).unwrap();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..5_000 {
        let name = rng.string();
        let groups: Vec<String> = (0..rng.below(4))
            .map(|_| if rng.below(2) == 0 { "team-a".into() } else { rng.string() })
            .collect();
        let claims = match rng.json(0) {
            serde_json::Value::Object(m) => m,
            other => {
                let mut m = serde_json::Map::new();
                m.insert("env".into(), if rng.below(2) == 0 { "ci".into() } else { other.clone() });
                m.insert("level".into(), other);
                m
            }
        };
        let method =
            [AuthMethod::Anonymous, AuthMethod::Basic, AuthMethod::Bearer, AuthMethod::Mtls][rng.below(4)];
        let who = Principal::new(name, groups, method).with_claims(claims);
        let repo = rng.string();
        let reference = rng.string();
        let path = rng.string();
        let action = Action::ALL[rng.below(Action::ALL.len())];
        let mut r = Request::new(action, &repo);
        if rng.below(2) == 0 {
            r.reference = Some(&reference);
        }
        r.path = &path;
        if rng.below(2) == 0 {
            r.client.ip = Some(if rng.below(2) == 0 { "10.1.1.1" } else { "::1" }.parse().unwrap());
        }
        let d = p.decide(&who, &r);
        let _ = d.to_string();
        let _ = p.grantable(&who, &repo, ActionSet::ALL, r.time);
        let mut one = vec![repo.clone()];
        p.filter_repositories(&who, &r, &mut one);
        let mut pull = r;
        pull.action = Action::Pull;
        pull.reference = None;
        assert_eq!(one.len() == 1, p.decide(&who, &pull).allowed, "filter and decide disagree on {repo:?}");
    }
}
