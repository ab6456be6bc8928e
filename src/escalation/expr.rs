//! `when` expressions of ladder stages (contract section 2): comparisons of
//! queue figures with numbers, joined by `and` / `or` (`and` binds tighter).
//! A comparison with a figure that has no value yet (service level with no
//! calls) is false.

use std::fmt;

use crate::state::QueueFigures;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Var {
    Waiting,
    LongestWait,
    ServiceLevel,
    Available,
    LoggedIn,
    AbandonRate,
}

impl Var {
    fn parse(s: &str) -> Option<Var> {
        Some(match s {
            "waiting" => Var::Waiting,
            "longest_wait" => Var::LongestWait,
            "service_level" => Var::ServiceLevel,
            "available" => Var::Available,
            "logged_in" => Var::LoggedIn,
            "abandon_rate" => Var::AbandonRate,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Var::Waiting => "waiting",
            Var::LongestWait => "longest_wait",
            Var::ServiceLevel => "service_level",
            Var::Available => "available",
            Var::LoggedIn => "logged_in",
            Var::AbandonRate => "abandon_rate",
        }
    }

    pub fn read(self, f: &QueueFigures) -> Option<f64> {
        match self {
            Var::Waiting => Some(f.waiting),
            Var::LongestWait => Some(f.longest_wait),
            Var::ServiceLevel => f.service_level,
            Var::Available => Some(f.available),
            Var::LoggedIn => Some(f.logged_in),
            Var::AbandonRate => f.abandon_rate,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Eq => "==",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cmp {
    pub var: Var,
    pub op: Op,
    pub value: f64,
}

impl Cmp {
    fn holds(&self, f: &QueueFigures) -> bool {
        let Some(x) = self.var.read(f) else {
            return false;
        };
        match self.op {
            Op::Lt => x < self.value,
            Op::Le => x <= self.value,
            Op::Gt => x > self.value,
            Op::Ge => x >= self.value,
            Op::Eq => (x - self.value).abs() < 1e-9,
        }
    }
}

/// Disjunction of conjunctions.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub any: Vec<Vec<Cmp>>,
}

impl Expr {
    pub fn parse(s: &str) -> Result<Expr, String> {
        let toks: Vec<&str> = s.split_whitespace().collect();
        if toks.is_empty() {
            return Err("empty expression".into());
        }
        let mut any = Vec::new();
        let mut all = Vec::new();
        let mut i = 0;
        loop {
            let cmp = parse_cmp(&toks, &mut i)?;
            all.push(cmp);
            match toks.get(i).copied() {
                None => break,
                Some("and") => {}
                Some("or") => any.push(std::mem::take(&mut all)),
                Some(t) => return Err(format!("expected `and` or `or`, found `{t}`")),
            }
            i += 1;
        }
        any.push(all);
        Ok(Expr { any })
    }

    pub fn eval(&self, f: &QueueFigures) -> bool {
        self.any.iter().any(|all| all.iter().all(|c| c.holds(f)))
    }

    /// The expression with the figures' current values, for the log's
    /// `reason`: `waiting=7 > 5`.
    pub fn explain(&self, f: &QueueFigures) -> String {
        let part = |c: &Cmp| {
            let v = c
                .var
                .read(f)
                .map(format_num)
                .unwrap_or_else(|| "null".into());
            format!(
                "{}={} {} {}",
                c.var.name(),
                v,
                c.op.as_str(),
                format_num(c.value)
            )
        };
        self.any
            .iter()
            .map(|all| all.iter().map(part).collect::<Vec<_>>().join(" and "))
            .collect::<Vec<_>>()
            .join(" or ")
    }
}

fn format_num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{:.4}", x).trim_end_matches('0').to_string()
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self
            .any
            .iter()
            .map(|all| {
                all.iter()
                    .map(|c| format!("{} {} {}", c.var.name(), c.op.as_str(), format_num(c.value)))
                    .collect::<Vec<_>>()
                    .join(" and ")
            })
            .collect::<Vec<_>>()
            .join(" or ");
        f.write_str(&s)
    }
}

fn parse_cmp(toks: &[&str], i: &mut usize) -> Result<Cmp, String> {
    let var_s = toks.get(*i).ok_or("expected a figure")?;
    let var = Var::parse(var_s).ok_or_else(|| {
        format!("unknown figure `{var_s}` (waiting, longest_wait, service_level, available, logged_in, abandon_rate)")
    })?;
    let op_s = toks
        .get(*i + 1)
        .ok_or_else(|| format!("expected an operator after `{var_s}`"))?;
    let op = match *op_s {
        "<" => Op::Lt,
        "<=" => Op::Le,
        ">" => Op::Gt,
        ">=" => Op::Ge,
        "==" => Op::Eq,
        o => return Err(format!("unknown operator `{o}` (< <= > >= ==)")),
    };
    let v_s = toks
        .get(*i + 2)
        .ok_or_else(|| format!("expected a number after `{op_s}`"))?;
    let value: f64 = v_s
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite())
        .ok_or_else(|| format!("`{v_s}` is not a number"))?;
    *i += 3;
    Ok(Cmp { var, op, value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_evaluates() {
        let e = Expr::parse("waiting > 5 and waiting < 10 or longest_wait >= 120").unwrap();
        let mut f = QueueFigures {
            waiting: 7.0,
            ..Default::default()
        };
        assert!(e.eval(&f));
        f.waiting = 10.0;
        assert!(!e.eval(&f));
        f.longest_wait = 120.0;
        assert!(e.eval(&f));
        assert_eq!(
            e.to_string(),
            "waiting > 5 and waiting < 10 or longest_wait >= 120"
        );
        assert!(
            !Expr::parse("service_level < 0.8").unwrap().eval(&f),
            "null is false"
        );
    }

    #[test]
    fn errors_are_specific() {
        assert!(Expr::parse("").is_err());
        assert!(
            Expr::parse("queue_depth > 5")
                .unwrap_err()
                .contains("unknown figure")
        );
        assert!(
            Expr::parse("waiting => 5")
                .unwrap_err()
                .contains("operator")
        );
        assert!(
            Expr::parse("waiting > five")
                .unwrap_err()
                .contains("not a number")
        );
        assert!(
            Expr::parse("waiting > 5 xor waiting < 2")
                .unwrap_err()
                .contains("`and` or `or`")
        );
    }
}
