//! Shell-style patterns as BIRD uses them (`ifname ~ "cali*"`, `interface -"kube-ipvs*"`,
//! `include "*.cfg"`): `*` matches any run of characters, `?` exactly one.

/// Whether `text` matches `pattern` as a whole. Iterative, with one backtrack point per `*`,
/// so a hostile pattern costs at most O(len(pattern) × len(text)).
pub fn matches(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Whether a pattern has wildcards at all.
pub fn is_pattern(s: &str) -> bool {
    s.contains(['*', '?'])
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn stars_and_questions() {
        assert!(matches("cali*", "cali12ab"));
        assert!(matches("*.cali", "wireguard.cali"));
        assert!(!matches("*.cali", "wireguard.calico"));
        assert!(matches("bpf*.cali", "bpfout.cali"));
        assert!(matches("*", ""));
        assert!(matches("tunl?", "tunl0"));
        assert!(!matches("tunl?", "tunl"));
        assert!(matches("a*b*c", "axxbyyc"));
        assert!(!matches("a*b*c", "axxbyy"));
    }
}
