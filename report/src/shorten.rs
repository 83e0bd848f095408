//! The name a report shows for a function, as `go tool pprof` chooses it
//! when it reads a profile (its symbolizer's `demangleSingleFunction`, in
//! the default mode).
//!
//! A function whose name differs from its system name was named by its
//! producer (heapprof names Rust functions so, keeping the mangled symbol
//! as the system name), and keeps its name. Otherwise pprof takes the
//! system name and, when it looks like demangled C++ (it has `::`, `<`,
//! `>`, `[` or `]`), drops what lies inside `(...)` and then `<...>`:
//! `<alloc::boxed::Box<F,A> as FnOnce<Args>>::call_once` becomes
//! `::call_once`, as pprof prints it for other producers' Rust profiles.

use std::borrow::Cow;

use heapprof_pprof::Function;

/// The name pprof shows for `function`.
pub(crate) fn display_name(function: &Function) -> Cow<'_, str> {
    let (name, system) = (&function.name, &function.system_name);
    if !name.is_empty() && system != name {
        return Cow::Borrowed(name);
    }
    if looks_like_demangled_cpp(system) {
        let name = remove_matching(system, '(', ')');
        Cow::Owned(remove_matching(&name, '<', '>'))
    } else {
        Cow::Borrowed(system)
    }
}

/// pprof's guess that a name is demangled C++ (so may be simplified): not
/// a Java `class.<init>`, not a Go `pkg.(*T[...]).Method`.
fn looks_like_demangled_cpp(name: &str) -> bool {
    if name.contains(".<") || name.contains("]).") {
        return false;
    }
    name.contains(['<', '>', '[', ']']) || name.contains("::")
}

/// `name` without its outermost `start`..`end` groups (nested ones go with
/// them). As in pprof, a closing one with none open ends the work there,
/// and a group never closed stays.
fn remove_matching(name: &str, start: char, end: char) -> String {
    let mut kept = String::with_capacity(name.len());
    let mut group = String::new();
    let mut nesting = 0usize;
    for (i, c) in name.char_indices() {
        if nesting == 0 {
            if c == start {
                nesting = 1;
                group.push(c);
            } else if c == end {
                kept.push_str(&name[i..]);
                return kept;
            } else {
                kept.push(c);
            }
            continue;
        }
        group.push(c);
        if c == start {
            nesting += 1;
        } else if c == end {
            nesting -= 1;
            if nesting == 0 {
                group.clear();
            }
        }
    }
    kept.push_str(&group);
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(name: &str, system_name: &str) -> String {
        let function = Function {
            name: name.to_owned(),
            system_name: system_name.to_owned(),
            ..Function::default()
        };
        display_name(&function).into_owned()
    }

    #[test]
    fn names_given_by_their_producer_stay() {
        assert_eq!(
            shown(
                "alloc::vec::Vec<T>::push",
                "_ZN5alloc3vec8Vec$LT$T$GT$4push17h0123456789abcdefE"
            ),
            "alloc::vec::Vec<T>::push"
        );
        assert_eq!(shown("Vec<T>::push", ""), "Vec<T>::push");
    }

    #[test]
    fn demangled_cpp_and_rust_lose_parameters_and_templates() {
        let rust = "<alloc::boxed::Box<F,A> as core::ops::function::FnOnce<Args>>::call_once";
        assert_eq!(shown(rust, rust), "::call_once");
        assert_eq!(
            shown("", "std::vector<int>::push_back(int const&)"),
            "std::vector::push_back"
        );
        assert_eq!(shown("ns::f()", "ns::f()"), "ns::f");
        // Go generics' brackets count, their parentheses do not survive.
        let go = "pkg.New[go.shape.interface { At() int }]";
        assert_eq!(shown(go, go), "pkg.New[go.shape.interface { At int }]");
    }

    #[test]
    fn java_go_and_plain_names_are_left_alone() {
        for name in [
            "java.util.ArrayList.<init>",
            "main.(*T[...]).Run",
            "malloc",
            "fib (x)",
        ] {
            assert_eq!(shown(name, name), name);
        }
    }

    #[test]
    fn unbalanced_groups_are_handled_as_pprof_handles_them() {
        // A closing one with none open: groups before it go, the rest stays.
        assert_eq!(shown("a::b>c<d>", "a::b>c<d>"), "a::b>c<d>");
        assert_eq!(shown("a(b)::c)d", "a(b)::c)d"), "a::c)d");
        // A group never closed stays; those closed before it go.
        assert_eq!(shown("a::f(x)<y>::g<z", "a::f(x)<y>::g<z"), "a::f::g<z");
    }
}
