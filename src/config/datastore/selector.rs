//! Calico's label selector language, parsed and evaluated against a node's labels.
//!
//! The grammar follows Calico's tokenizer and parser (`libcalico-go/lib/selector/tokenizer/
//! tokenizer.go`, `parser/parser.go`): `||` binds looser than `&&`, `!` applies to one term,
//! strings are single- or double-quoted with no escapes, label names are
//! `[A-Za-z0-9_./-]+`, spaces and tabs separate tokens. Terms: `has(k)`, `all()`,
//! `global()`, `k == 'v'`, `k != 'v'`, `k in {'a', 'b'}`, `k not in {…}`, `k contains 'v'`,
//! `k starts with 'v'`, `k ends with 'v'`, and a parenthesised selector. The empty selector
//! selects everything. Matching rules (from `parser/ast.go`): `!=` and `not in` are true
//! when the label is absent.

use std::collections::HashMap;

use nom::branch::alt;
use nom::bytes::complete::{tag, take_until, take_while1};
use nom::character::complete::{char, multispace0};
use nom::combinator::{eof, map, not, peek, value};
use nom::multi::separated_list0;
use nom::sequence::{delimited, preceded};
use nom::{IResult, Parser};

/// Deepest nesting of `(` and `!` accepted: parsing recurses, and no real selector comes near.
const MAX_DEPTH: usize = 64;

/// A parsed selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// `all()`, `global()` (nodes are cluster-wide) and the empty selector.
    All,
    Has(String),
    Eq(String, String),
    Ne(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Contains(String, String),
    StartsWith(String, String),
    EndsWith(String, String),
    Not(Box<Selector>),
    And(Vec<Selector>),
    Or(Vec<Selector>),
}

impl Selector {
    /// Parses selector text; the error says where parsing stopped.
    pub fn parse(text: &str) -> Result<Selector, String> {
        if text.trim_matches([' ', '\t']).is_empty() {
            return Ok(Selector::All);
        }
        match (|i| or(i, 0), blank, eof).parse(text) {
            Ok((_, (selector, _, _))) => Ok(selector),
            Err(nom::Err::Error(e) | nom::Err::Failure(e)) => {
                let at = text.len() - e.input.len();
                Err(format!(
                    "selector {text:?}: unexpected input at offset {at}: {:?}",
                    e.input.chars().take(20).collect::<String>()
                ))
            }
            Err(nom::Err::Incomplete(_)) => Err(format!("selector {text:?} is incomplete")),
        }
    }

    /// Whether a set of labels is selected.
    pub fn matches(&self, labels: &HashMap<String, String>) -> bool {
        let get = |k: &String| labels.get(k).map(String::as_str);
        match self {
            Selector::All => true,
            Selector::Has(k) => labels.contains_key(k),
            Selector::Eq(k, v) => get(k) == Some(v),
            Selector::Ne(k, v) => get(k) != Some(v),
            Selector::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Selector::NotIn(k, vs) => !get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Selector::Contains(k, v) => get(k).is_some_and(|x| x.contains(v.as_str())),
            Selector::StartsWith(k, v) => get(k).is_some_and(|x| x.starts_with(v.as_str())),
            Selector::EndsWith(k, v) => get(k).is_some_and(|x| x.ends_with(v.as_str())),
            Selector::Not(s) => !s.matches(labels),
            Selector::And(all) => all.iter().all(|s| s.matches(labels)),
            Selector::Or(any) => any.iter().any(|s| s.matches(labels)),
        }
    }
}

type Res<'a, T> = IResult<&'a str, T>;

/// Spaces and tabs (Calico's `trimWhitespace`), also newlines for YAML block scalars.
fn blank(i: &str) -> Res<'_, &str> {
    multispace0(i)
}

fn token<'a>(
    t: &'static str,
) -> impl Parser<&'a str, Output = &'a str, Error = nom::error::Error<&'a str>> {
    preceded(blank, tag(t))
}

fn too_deep(i: &str) -> nom::Err<nom::error::Error<&str>> {
    nom::Err::Failure(nom::error::Error::new(i, nom::error::ErrorKind::TooLarge))
}

/// `and ('||' and)*`
fn or(i: &str, depth: usize) -> Res<'_, Selector> {
    joined(i, depth, "||", and, Selector::Or)
}

/// `unary ('&&' unary)*`
fn and(i: &str, depth: usize) -> Res<'_, Selector> {
    joined(i, depth, "&&", unary, Selector::And)
}

/// `item (op item)*`, one item left as it is.
fn joined<'a>(
    i: &'a str,
    depth: usize,
    op: &'static str,
    item: fn(&'a str, usize) -> Res<'a, Selector>,
    join: fn(Vec<Selector>) -> Selector,
) -> Res<'a, Selector> {
    let (mut i, first) = item(i, depth)?;
    let mut terms = vec![first];
    while let Ok((rest, _)) = token(op).parse(i) {
        let (rest, next) = item(rest, depth)?;
        terms.push(next);
        i = rest;
    }
    let s = match <[Selector; 1]>::try_from(terms) {
        Ok([one]) => one,
        Err(terms) => join(terms),
    };
    Ok((i, s))
}

/// `'!' unary | '(' or ')' | term`
fn unary(i: &str, depth: usize) -> Res<'_, Selector> {
    if depth >= MAX_DEPTH {
        return Err(too_deep(i));
    }
    // `!` but not `!=`, which only follows a label.
    if let Ok((rest, _)) = (token("!"), not(char('='))).parse(i) {
        let (rest, inner) = unary(rest, depth + 1)?;
        return Ok((rest, Selector::Not(Box::new(inner))));
    }
    if let Ok((rest, _)) = token("(").parse(i) {
        let (rest, inner) = or(rest, depth + 1)?;
        let (rest, _) = token(")").parse(rest)?;
        return Ok((rest, inner));
    }
    term(i)
}

/// Calico's `identifierChar`.
fn label_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-')
}

fn label(i: &str) -> Res<'_, &str> {
    preceded(blank, take_while1(label_char)).parse(i)
}

fn string(i: &str) -> Res<'_, String> {
    preceded(
        blank,
        alt((
            delimited(char('"'), take_until("\""), char('"')),
            delimited(char('\''), take_until("'"), char('\'')),
        )),
    )
    .map(str::to_string)
    .parse(i)
}

fn set(i: &str) -> Res<'_, Vec<String>> {
    delimited(token("{"), separated_list0(token(","), string), token("}")).parse(i)
}

/// The end of a keyword: no label character follows (Calico's `isWordBoundary`).
fn boundary(i: &str) -> Res<'_, ()> {
    peek(not(take_while1(label_char))).parse(i)
}

/// A keyword followed by a word boundary (Calico's `cutPrefixCheckBreak`).
fn word<'a>(
    w: &'static str,
) -> impl Parser<&'a str, Output = (), Error = nom::error::Error<&'a str>> {
    value((), (token(w), boundary))
}

fn term(i: &str) -> Res<'_, Selector> {
    let call = |name: &'static str| (token(name), token("("), blank, token(")"));
    if let Ok((rest, _)) = alt((call("all"), call("global"))).parse(i) {
        return Ok((rest, Selector::All));
    }
    if let Ok((rest, k)) = delimited((token("has"), token("(")), label, token(")")).parse(i) {
        return Ok((rest, Selector::Has(k.to_string())));
    }
    let (i, k) = label(i)?;
    let k = k.to_string();
    #[derive(Clone, Copy)]
    enum Op {
        Eq,
        Ne,
        Contains,
        StartsWith,
        EndsWith,
    }
    let mut in_set = alt((
        // Only the last word needs a boundary: Calico takes `notin` too.
        map(preceded((token("not"), word("in")), set), |vs| (false, vs)),
        map(preceded(word("in"), set), |vs| (true, vs)),
    ));
    if let Ok((rest, (positive, vs))) = in_set.parse(i) {
        let s = if positive {
            Selector::In(k, vs)
        } else {
            Selector::NotIn(k, vs)
        };
        return Ok((rest, s));
    }
    let op = alt((
        value(Op::Eq, token("==")),
        value(Op::Ne, token("!=")),
        value(Op::Contains, word("contains")),
        value(Op::StartsWith, (token("starts"), word("with"))),
        value(Op::EndsWith, (token("ends"), word("with"))),
    ));
    let (rest, (op, v)) = (op, string).parse(i)?;
    let s = match op {
        Op::Eq => Selector::Eq(k, v),
        Op::Ne => Selector::Ne(k, v),
        Op::Contains => Selector::Contains(k, v),
        Op::StartsWith => Selector::StartsWith(k, v),
        Op::EndsWith => Selector::EndsWith(k, v),
    };
    Ok((rest, s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn evaluates_calico_selectors() {
        let rr = labels(&[("route-reflector", "true"), ("rack", "r1")]);
        let plain = labels(&[("rack", "r2"), ("kubernetes.io/hostname", "node-b")]);
        let none = labels(&[]);
        // (selector, rr, plain, none)
        let table = [
            ("", true, true, true),
            ("  ", true, true, true),
            ("all()", true, true, true),
            ("global()", true, true, true),
            ("has(route-reflector)", true, false, false),
            ("!has(route-reflector)", false, true, true),
            ("route-reflector == 'true'", true, false, false),
            ("route-reflector == \"true\"", true, false, false),
            ("route-reflector != 'true'", false, true, true),
            ("rack in {'r1', 'r3'}", true, false, false),
            ("rack not in {'r1'}", false, true, true),
            ("rack notin {'r1'}", false, true, true),
            ("rack in {}", false, false, false),
            ("rack == 'r1' || rack == 'r2'", true, true, false),
            ("has(rack) && !(rack == 'r1')", false, true, false),
            ("!!has(rack)", true, true, false),
            ("kubernetes.io/hostname == 'node-b'", false, true, false),
            ("rack starts with 'r'", true, true, false),
            ("rack ends with '2'", false, true, false),
            ("rack contains 'x'", false, false, false),
            ("a == 'x' || has(rack) && rack != 'r1'", false, true, false),
            ("((has(rack)))", true, true, false),
        ];
        for (text, a, b, c) in table {
            let s = Selector::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(
                [s.matches(&rr), s.matches(&plain), s.matches(&none)],
                [a, b, c],
                "{text}"
            );
        }
    }

    #[test]
    fn and_binds_tighter_than_or() {
        let s = Selector::parse("has(a) || has(b) && has(c)").unwrap();
        assert_eq!(
            s,
            Selector::Or(vec![
                Selector::Has("a".into()),
                Selector::And(vec![Selector::Has("b".into()), Selector::Has("c".into())]),
            ])
        );
    }

    #[test]
    fn refuses_malformed_selectors() {
        for bad in [
            "has(",
            "has()",
            "a = 'b'",
            "a == b",
            "a == 'b",
            "a in {'b'",
            "a in {b}",
            "(has(a)",
            "has(a))",
            "has(a) &&",
            "has(a) & has(b)",
            "a",
            "!",
            "all(x)",
            "a inside {'b'}",
            "has(a) has(b)",
        ] {
            assert!(Selector::parse(bad).is_err(), "{bad}");
        }
        let deep = "(".repeat(10_000) + "all()" + &")".repeat(10_000);
        assert!(Selector::parse(&deep).is_err());
        assert!(Selector::parse(&"!".repeat(10_000)).is_err());
    }

    proptest! {
        #[test]
        fn parse_never_panics(text in ".{0,200}") {
            let _ = Selector::parse(&text);
        }

        #[test]
        fn parse_never_panics_on_selector_like_text(
            text in "[ !()&|=a-c'\"{},.]{0,120}|(has|in|not|all|with|starts)[ ()a-c'=!{}&|]{0,60}"
        ) {
            let _ = Selector::parse(&text);
        }
    }
}
