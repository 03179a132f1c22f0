//! MATH answers on hand-written problems (tests/data/math.jsonl): the reference answers as the
//! normalizer sees them, and hand-written solutions judged right or wrong.

mod common;

use llama31_eval::math::{judge, load_problems, score};

#[test]
fn references_and_hand_written_solutions() {
    let problems = load_problems(&common::data("math.jsonl")).unwrap();
    // (normalized reference, a solution that must be judged correct, one that must not).
    let cases: [(&str, &str, &str); 13] = [
        (
            r"\frac{3}{4}",
            r"so the answer is $\boxed{\dfrac34}$.",
            r"$\boxed{0.75}$",
        ),
        (
            r"\frac{3}{4}",
            r"Final Answer: The final answer is $\frac{3}{4}$. I hope it is correct.",
            r"\boxed{\frac{4}{3}}",
        ),
        ("[2,5)", r"The domain is $\boxed{[2,5)}$.", r"\boxed{[2,5]}"),
        ("120", r"\boxed{120 \text{ degrees}}", r"\boxed{60^\circ}"),
        ("13", r"The diagonal is $\boxed{13}$ cm.", r"\boxed{169}"),
        ("10000", r"\boxed{10,000}", r"\boxed{1000}"),
        ("14.75", r"\boxed{14.75}", r"\boxed{\$14.70}"),
        ("-3", r"x = \boxed{-3}.", r"x = \boxed{3}."),
        (r"5\sqrt{2}", r"\boxed{5 \sqrt 2}", r"\boxed{\sqrt{50}}"),
        ("(1,2)", r"\boxed{\left( 1, 2 \right)}", r"\boxed{(2,1)}"),
        ("6", r"\boxed{6 \text{ ways}}", r"\boxed{3}"),
        (
            r"\frac{\sqrt{3}}{2}",
            r"\boxed{\frac{\sqrt3}{2}}",
            r"\boxed{\frac{1}{2}}",
        ),
        (r"\frac{7}{2}", r"\boxed{\frac{7}{2}}.", r"\boxed{3.5}"),
    ];
    assert_eq!(problems.len(), cases.len());
    let mut judged = Vec::new();
    for (p, (reference, right, wrong)) in problems.iter().zip(cases) {
        let j = judge(p, right);
        assert_eq!(j.reference, reference, "{}", p.id);
        assert!(j.correct, "{}: {right:?} → {:?}", p.id, j.normalized);
        let w = judge(p, wrong);
        assert!(!w.correct, "{}: {wrong:?} judged correct", p.id);
        judged.push(if p.id.ends_with("/7") { w } else { j });
    }
    let s = score(&problems, &judged);
    assert_eq!((s.total, s.correct), (13, 12));
    assert_eq!(s.by_type["Algebra"], (4, 3));
    // A solution without any answer is wrong, not an error.
    assert!(!judge(&problems[0], "I do not know.").correct);
}

#[test]
fn bad_files_name_the_line() {
    let dir = std::env::temp_dir().join(format!("llama31-math-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("m.jsonl");
    std::fs::write(&p, "{\"problem\": \"p\", \"solution\": \"no box\"}\n").unwrap();
    let err = load_problems(&p).unwrap_err().to_string();
    assert!(
        err.ends_with("m.jsonl:1: the solution has no \\boxed{} answer"),
        "{err}"
    );
    std::fs::write(
        &p,
        "{\"problem\": \"p\", \"answer\": \"1\"}\n{\"problem\": 2, \"answer\": \"1\"}\n",
    )
    .unwrap();
    let err = load_problems(&p).unwrap_err().to_string();
    assert!(
        err.ends_with("m.jsonl:2: `problem` must be a string, found a number"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
