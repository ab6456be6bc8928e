//! Which language a wall page speaks, and the string tables it uses.
//!
//! Why on the server: the page must render its first frame in the right
//! language (a TV is never touched after it is switched on), so the table is
//! written into the page rather than fetched; and the browser's language
//! already reaches the daemon as `Accept-Language`. The tables themselves are
//! JSON files beside the page (`wall/locales/*.json`), compiled in, and also
//! served at `/wall/locales/{locale}.json` for translators and tools.

use crate::config::WallLocale;

/// A language the wall has texts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locale {
    En,
    ZhCn,
}

const EN: &str = include_str!("locales/en.json");
const ZH_CN: &str = include_str!("locales/zh-CN.json");

impl Locale {
    pub fn code(self) -> &'static str {
        match self {
            Locale::En => "en",
            Locale::ZhCn => "zh-CN",
        }
    }

    /// The string table (JSON text).
    pub fn table(self) -> &'static str {
        match self {
            Locale::En => EN,
            Locale::ZhCn => ZH_CN,
        }
    }

    /// The string table, parsed (for pages written on the server).
    pub fn texts(self) -> serde_json::Map<String, serde_json::Value> {
        serde_json::from_str(self.table()).unwrap_or_default()
    }

    /// A language tag as a browser or a URL writes it (`zh`, `zh-CN`,
    /// `zh-Hans-CN`, `en-GB`...); `None` for a language without texts.
    pub fn from_tag(tag: &str) -> Option<Locale> {
        let primary = tag.trim().split(['-', '_']).next()?.to_ascii_lowercase();
        match primary.as_str() {
            "en" => Some(Locale::En),
            "zh" => Some(Locale::ZhCn),
            _ => None,
        }
    }

    /// The table file name served at `/wall/locales/{name}`.
    pub fn from_file(name: &str) -> Option<Locale> {
        [Locale::En, Locale::ZhCn]
            .into_iter()
            .find(|l| name.strip_suffix(".json") == Some(l.code()))
    }
}

/// The page's language: `?lang=` when it names one with texts, else the
/// configured `wall_locale`, else (auto) the browser's most preferred
/// language with texts, else English.
pub fn pick(query_lang: Option<&str>, configured: WallLocale, accept: Option<&str>) -> Locale {
    if let Some(l) = query_lang.and_then(Locale::from_tag) {
        return l;
    }
    match configured {
        WallLocale::En => return Locale::En,
        WallLocale::ZhCn => return Locale::ZhCn,
        WallLocale::Auto => {}
    }
    let mut langs: Vec<(f32, Locale)> = accept
        .unwrap_or("")
        .split(',')
        .filter_map(|part| {
            let mut it = part.split(';');
            let l = Locale::from_tag(it.next()?)?;
            let q = it
                .find_map(|p| p.trim().strip_prefix("q="))
                .map_or(Some(1.0), |q| q.trim().parse::<f32>().ok())?;
            (q > 0.0).then_some((q, l))
        })
        .collect();
    // Stable: equal weights keep the browser's order.
    langs.sort_by(|a, b| b.0.total_cmp(&a.0));
    langs.first().map_or(Locale::En, |(_, l)| *l)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_then_the_config_then_the_browser_decides() {
        let zh = Some("zh-CN,zh;q=0.9,en;q=0.8");
        assert_eq!(pick(None, WallLocale::Auto, zh), Locale::ZhCn);
        assert_eq!(
            pick(None, WallLocale::Auto, Some("en-US,en;q=0.9")),
            Locale::En
        );
        assert_eq!(
            pick(None, WallLocale::Auto, Some("fr-FR, en;q=0.5, zh;q=0.7")),
            Locale::ZhCn
        );
        assert_eq!(
            pick(None, WallLocale::Auto, Some("fr")),
            Locale::En,
            "no texts: English"
        );
        assert_eq!(
            pick(None, WallLocale::Auto, Some("zh;q=abc")),
            Locale::En,
            "a bad weight is skipped"
        );
        assert_eq!(pick(None, WallLocale::Auto, None), Locale::En);
        assert_eq!(
            pick(None, WallLocale::En, zh),
            Locale::En,
            "the config fixes it"
        );
        assert_eq!(
            pick(Some("zh-CN"), WallLocale::En, None),
            Locale::ZhCn,
            "?lang= wins"
        );
        assert_eq!(pick(Some("xx"), WallLocale::ZhCn, None), Locale::ZhCn);
    }

    #[test]
    fn every_table_has_the_same_keys_and_placeholders() {
        let parse = |l: Locale| -> serde_json::Map<String, serde_json::Value> {
            serde_json::from_str(l.table()).expect("a locale table is JSON")
        };
        let (en, zh) = (parse(Locale::En), parse(Locale::ZhCn));
        let keys = |m: &serde_json::Map<String, serde_json::Value>| {
            m.keys().cloned().collect::<std::collections::BTreeSet<_>>()
        };
        assert_eq!(keys(&en), keys(&zh));
        let holes = |s: &str| {
            let mut v: Vec<String> = s
                .split('{')
                .skip(1)
                .filter_map(|p| p.split_once('}').map(|(k, _)| k.to_string()))
                .collect();
            v.sort();
            v
        };
        for (k, v) in &en {
            if let (Some(a), Some(b)) = (v.as_str(), zh[k].as_str())
                && !k.starts_with('_')
            {
                assert_eq!(holes(a), holes(b), "{k}: the same placeholders");
            }
        }
        assert_eq!(zh["tile.waiting"], "排队数");
        assert_eq!(Locale::from_file("zh-CN.json"), Some(Locale::ZhCn));
        assert_eq!(Locale::from_file("../x"), None);
    }
}
