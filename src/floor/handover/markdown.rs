//! `acdmon report --handover` as Markdown: the written handover a
//! supervisor prints or pastes, in the centre's language.

use super::*;

/// Texts of the Markdown report, in one place per language.
struct Texts {
    title: &'static str,
    unresolved: &'static str,
    late: &'static str,
    queue_head: &'static str,
    escalations: &'static str,
    started: &'static str,
    ended: &'static str,
    active: &'static str,
    signed_in: &'static str,
    advice: &'static str,
    duty_log: &'static str,
    none: &'static str,
    ack: &'static str,
    not_ack: &'static str,
    outages: &'static str,
    not_captured: &'static str,
}

const EN: Texts = Texts {
    title: "Shift handover",
    unresolved: "UNRESOLVED: handed over during an active emergency",
    late: "Written late (the daemon was down at the shift's end): no end-of-shift state.",
    queue_head: "| queue | offered | answered | abandoned | SL | ASA s | longest wait s | peak waiting (at) |",
    escalations: "Escalations",
    started: "Started",
    ended: "Ended",
    active: "Still active",
    signed_in: "Signed in by the ladder",
    advice: "Advice pending",
    duty_log: "Duty log",
    none: "none",
    ack: "Acknowledged by",
    not_ack: "Not acknowledged yet",
    outages: "Source outages",
    not_captured: "not captured",
};

const ZH_CN: Texts = Texts {
    title: "交接班记录",
    unresolved: "未解决：交接时应急仍在进行",
    late: "补写（班次结束时守护进程未运行）：无班末状态。",
    queue_head: "| 队列 | 进线 | 接通 | 放弃 | 服务水平 | 平均应答秒 | 最长等待秒 | 最多排队（时间） |",
    escalations: "升级",
    started: "开始",
    ended: "结束",
    active: "仍在进行",
    signed_in: "由升级签入的坐席",
    advice: "待处理建议",
    duty_log: "值班日志",
    none: "无",
    ack: "确认人",
    not_ack: "尚未确认",
    outages: "数据源中断",
    not_captured: "未采集",
};

fn texts(lang: &str) -> &'static Texts {
    if lang.eq_ignore_ascii_case("zh-CN") || lang.eq_ignore_ascii_case("zh") {
        &ZH_CN
    } else {
        &EN
    }
}

/// Handover records as Markdown (`acdmon report --handover DAY`); times in
/// `zone`; `lang` is `en` or `zh-CN`.
pub fn markdown(records: &[Handover], zone: &jiff::tz::TimeZone, lang: &str) -> String {
    use std::fmt::Write;
    let t = texts(lang);
    let local = |ts: Ts| -> String {
        ts.to_jiff()
            .to_zoned_datetime(zone.clone())
            .strftime("%Y-%m-%d %H:%M")
            .to_string()
    };
    let mut s = String::new();
    for h in records {
        let _ = writeln!(
            s,
            "# {} — {} {} ({} – {})\n",
            t.title,
            h.shift,
            h.day,
            local(h.start),
            local(h.end)
        );
        if h.unresolved {
            let _ = writeln!(s, "**{}**\n", t.unresolved);
            for r in &h.unresolved_reasons {
                let _ = writeln!(s, "- {r}");
            }
            s.push('\n');
        }
        if h.late {
            let _ = writeln!(s, "_{}_\n", t.late);
        }
        let _ = writeln!(s, "{}", t.queue_head);
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---|");
        let opt = |x: Option<f64>, pct: bool| match x {
            Some(v) if pct => format!("{:.1}%", v * 100.0),
            Some(v) => format!("{v:.1}"),
            None => "—".into(),
        };
        for q in &h.queues {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {:.0} | {} ({}) |",
                q.queue,
                q.offered,
                q.answered,
                q.abandoned,
                opt(q.service_level, true),
                opt(q.asa_s, false),
                q.longest_wait_s,
                q.peak_waiting,
                q.peak_waiting_at.map_or("—".into(), local)
            );
        }
        let e = &h.escalations;
        let _ = writeln!(s, "\n## {}\n", t.escalations);
        let list = |s: &mut String, head: &str, v: &[EntryBrief]| {
            let _ = writeln!(s, "- {head}: {}", if v.is_empty() { t.none } else { "" });
            for x in v {
                let _ = writeln!(
                    s,
                    "  - {} {} stage {} ({}): {}",
                    local(x.ts),
                    x.queue,
                    x.stage,
                    x.stage_name,
                    x.reason
                );
            }
        };
        list(&mut s, t.started, &e.started);
        list(&mut s, t.ended, &e.ended);
        match &e.active {
            Some(a) if !a.is_empty() => {
                let _ = writeln!(s, "- {}:", t.active);
                for x in a {
                    let _ = writeln!(
                        s,
                        "  - {} stage {} ({}) since {}",
                        x.queue,
                        x.stage,
                        x.stage_name,
                        local(x.since)
                    );
                }
            }
            _ => {
                let _ = writeln!(s, "- {}: {}", t.active, t.none);
            }
        }
        let signed = e
            .signed_in_by_ladder
            .as_ref()
            .filter(|v| !v.is_empty())
            .map_or(t.none.to_string(), |v| v.join(", "));
        let _ = writeln!(s, "- {}: {signed}", t.signed_in);
        list(&mut s, t.advice, &e.advice_pending);
        let _ = writeln!(s, "- {}: {}", t.outages, t.not_captured);
        let _ = writeln!(s, "\n## {}\n", t.duty_log);
        if h.duty_log.is_empty() {
            let _ = writeln!(s, "{}", t.none);
        }
        for d in &h.duty_log {
            let _ = writeln!(s, "- {} {}: {}", local(d.ts), d.by, d.text);
        }
        s.push('\n');
        match &h.ack {
            Some(a) => {
                let _ = writeln!(s, "{} {} ({})\n", t.ack, a.by, local(a.at));
            }
            None => {
                let _ = writeln!(s, "{}\n", t.not_ack);
            }
        }
    }
    s
}
