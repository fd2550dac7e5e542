//! `plugin set`: parsing `<name>[.<field>][=<value>]` and applying it to a plugin.
//!
//! Unlike Moby, a set is all-or-nothing (every argument is parsed and applied to a copy, the
//! copy replaces the plugin only when all succeeded), and a mount or device set updates both
//! the `Config` entry and the `Settings` entry, so the value survives a restart.

use dockplug_protocol::Plugin;

/// Why a `set` was refused. The texts are Moby's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SetError {
    /// The plugin is enabled.
    #[error("cannot set on an active plugin, disable plugin before setting")]
    Active,
    /// An argument starts with `=`.
    #[error("invalid format, must be <name>[.<field>][=<value>]")]
    InvalidFormat,
    /// No env, mount, device or args is called so.
    #[error("setting \"{name}\" not found in the plugin configuration")]
    NotFound {
        /// The setting name.
        name: String,
    },
    /// No field given and several are settable.
    #[error("multiple fields are settable, one must be specified")]
    MultipleSettable,
    /// The field may not be set.
    #[error("\"{pretty}\" is not settable")]
    NotSettable {
        /// `name` or `name.field`.
        pretty: String,
    },
    /// The config mount has no source to replace.
    #[error("plugin config has no mount source")]
    NoMountSource,
    /// The config device has no path to replace.
    #[error("plugin config has no device path")]
    NoDevicePath,
}

/// One parsed argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Settable {
    pub name: String,
    pub field: String,
    pub value: String,
}

/// Parses `<name>[.<field>][=<value>]`.
pub(crate) fn parse(arg: &str) -> Result<Settable, SetError> {
    let (key, value) = match arg.find('=') {
        Some(0) => return Err(SetError::InvalidFormat),
        Some(i) => (&arg[..i], &arg[i + 1..]),
        None => (arg, ""),
    };
    let (name, field) = match key.rfind('.') {
        Some(i) if i > 0 => (&key[..i], &key[i + 1..]),
        _ => (key, ""),
    };
    Ok(Settable { name: name.to_owned(), field: field.to_owned(), value: value.to_owned() })
}

impl Settable {
    /// Checks the field against `settable` and the one field `allowed` for the kind; fills
    /// in a defaulted field. Moby's `isSettable`.
    pub(crate) fn check(
        &mut self,
        allowed: &str,
        settable: Option<&[String]>,
    ) -> Result<(), SetError> {
        let settable = settable.unwrap_or_default();
        if self.field.is_empty() {
            match settable.len() {
                1 => self.field = settable[0].clone(),
                n if n > 1 => return Err(SetError::MultipleSettable),
                _ => {}
            }
        }
        let ok = !self.field.is_empty() && self.field == allowed && settable.contains(&self.field);
        if ok {
            Ok(())
        } else {
            let pretty = if self.field.is_empty() {
                self.name.clone()
            } else {
                format!("{}.{}", self.name, self.field)
            };
            Err(SetError::NotSettable { pretty })
        }
    }
}

/// Replaces `NAME=...` in `env` or appends it.
pub(crate) fn update_env(env: &mut Vec<String>, name: &str, value: &str) {
    let line = format!("{name}={value}");
    match env.iter_mut().find(|e| e.split_once('=').map(|(k, _)| k) == Some(name)) {
        Some(e) => *e = line,
        None => env.push(line),
    }
}

/// Applies `args` to `plugin` (which must be a copy: on error it is half-changed).
pub(crate) fn apply(plugin: &mut Plugin, args: &[String]) -> Result<(), SetError> {
    if plugin.enabled {
        return Err(SetError::Active);
    }
    let parsed = args.iter().map(|a| parse(a)).collect::<Result<Vec<_>, _>>()?;
    for mut s in parsed {
        let config = &mut plugin.config;
        let settings = &mut plugin.settings;
        if let Some(e) = config.env().iter().find(|e| e.name == s.name) {
            s.check("value", e.settable.as_deref())?;
            update_env(settings.env.get_or_insert_with(Vec::new), &s.name, &s.value);
        } else if let Some(i) = config.mounts().iter().position(|m| m.name == s.name) {
            let m = &mut config.mounts.get_or_insert_with(Vec::new)[i];
            s.check("source", m.settable.as_deref())?;
            if m.source.is_none() {
                return Err(SetError::NoMountSource);
            }
            m.source = Some(s.value.clone());
            for sm in
                settings.mounts.get_or_insert_with(Vec::new).iter_mut().filter(|m| m.name == s.name)
            {
                sm.source = Some(s.value.clone());
            }
        } else if let Some(i) = config.devices().iter().position(|d| d.name == s.name) {
            let d = &mut config.linux.devices.get_or_insert_with(Vec::new)[i];
            s.check("path", d.settable.as_deref())?;
            if d.path.is_none() {
                return Err(SetError::NoDevicePath);
            }
            d.path = Some(s.value.clone());
            for sd in settings
                .devices
                .get_or_insert_with(Vec::new)
                .iter_mut()
                .filter(|d| d.name == s.name)
            {
                sd.path = Some(s.value.clone());
            }
        } else if config.args.name == s.name {
            s.check("value", config.args.settable.as_deref())?;
            settings.args = Some(s.value.split(' ').map(str::to_owned).collect());
        } else {
            return Err(SetError::NotFound { name: s.name });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(name: &str, field: &str, value: &str) -> Settable {
        Settable { name: name.into(), field: field.into(), value: value.into() }
    }

    #[test]
    fn new_settable() {
        assert_eq!(parse("name=value"), Ok(st("name", "", "value")));
        assert_eq!(parse("name"), Ok(st("name", "", "")));
        assert_eq!(parse("name.field=value"), Ok(st("name", "field", "value")));
        assert_eq!(parse("name.field"), Ok(st("name", "field", "")));
        assert_eq!(parse("a.b.c=v"), Ok(st("a.b", "c", "v")));
        assert_eq!(parse(".x=v"), Ok(st(".x", "", "v")));
        assert_eq!(parse("=value"), Err(SetError::InvalidFormat));
        assert_eq!(parse("="), Err(SetError::InvalidFormat));
    }

    #[test]
    fn is_settable() {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // A single settable field is the default.
        let mut s = st("n", "", "x");
        assert_eq!(s.check("value", Some(&v(&["value"]))), Ok(()));
        assert_eq!(s.field, "value");
        // Several: one must be named.
        let mut s = st("n", "", "x");
        assert_eq!(
            s.check("value", Some(&v(&["value", "source"]))),
            Err(SetError::MultipleSettable)
        );
        // Allowed for the kind but not listed.
        let mut s = st("n", "value", "x");
        assert!(matches!(
            s.check("value", Some(&v(&["source"]))),
            Err(SetError::NotSettable { .. })
        ));
        // Listed but not allowed for the kind.
        let mut s = st("n", "source", "x");
        assert_eq!(
            s.check("value", Some(&v(&["source"]))),
            Err(SetError::NotSettable { pretty: "n.source".into() })
        );
        // Nothing settable.
        let mut s = st("n", "", "x");
        assert_eq!(s.check("value", None), Err(SetError::NotSettable { pretty: "n".into() }));
    }

    #[test]
    fn update_settings_env() {
        let mut env = vec!["DEBUG=0".to_owned(), "OTHER=1".to_owned()];
        update_env(&mut env, "DEBUG", "1");
        assert_eq!(env, ["DEBUG=1", "OTHER=1"]);
        update_env(&mut env, "NEW", "x=y");
        assert_eq!(env, ["DEBUG=1", "OTHER=1", "NEW=x=y"]);
    }
}
