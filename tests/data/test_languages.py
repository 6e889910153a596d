"""A file's language from its name, extension, shebang or the source's override; the names
people write for languages."""

from __future__ import annotations

import pathspec
import pytest

from runner.grammars import has_parser
from runner.languages import canonical, language_of

FILES = [
    ("cmd/server/main.go", None, "go"),
    ("lib/demo/math.ex", None, "elixir"),
    ("test/math_test.exs", None, "elixir"),
    ("app/src/Main.kt", None, "kotlin"),
    ("src/App.res", None, "rescript"),
    ("src/Api.cs", None, "csharp"),
    ("src/point.cpp", None, "cpp"),
    ("include/point.h", None, "c"),
    ("web/App.jsx", None, "javascript"),
    ("web/App.tsx", None, "tsx"),
    ("Dockerfile", None, "dockerfile"),
    ("deploy/Dockerfile.prod", None, "dockerfile"),
    ("Makefile", None, "make"),
    ("Gemfile", None, "ruby"),
    # seen unnamed in real repositories (sinatra, Alamofire, MediatR)
    ("config.ru", None, "ruby"),
    ("Alamofire.podspec", None, "ruby"),
    ("fastlane/Fastfile", None, "ruby"),
    ("src/MediatR/MediatR.csproj", None, "xml"),
    ("Directory.Build.props", None, "xml"),
    ("Example/Base.lproj/Main.storyboard", None, "xml"),
    ("Source/Info.plist", None, "xml"),
    ("CMakeLists.txt", None, "cmake"),
    (".env.local", None, "env"),
    ("notes.txt", None, "text"),
    ("bin/tool", "#!/usr/bin/env python3.11\nimport sys\n", "python"),
    ("bin/run", "#!/bin/sh\nset -e\n", "bash"),
    ("bin/serve", "#!/usr/bin/env -S node --enable-source-maps\n", "javascript"),
    ("LICENSE", "Copyright ...", None),
]


@pytest.mark.parametrize(("path", "head", "language"), FILES)
def test_language_of(path, head, language):
    assert language_of(path, head) == language


def test_source_override_wins():
    overrides = [(pathspec.GitIgnoreSpec.from_lines(["*.inc"]), "php")]
    assert language_of("lib/x.inc", None, overrides) == "php"
    assert language_of("lib/x.go", None, overrides) == "go"


def test_new_languages_have_grammars():
    for language in ("go", "elixir", "kotlin", "java", "swift", "ruby", "php", "scala", "lua"):
        assert has_parser(language), language
    assert not has_parser("rescript") and not has_parser("text")


@pytest.mark.parametrize(
    ("written", "name"),
    [
        ("golang", "go"),
        ("c++", "cpp"),
        ("py", "python"),
        ("ts", "typescript"),
        ("Zig", "zig"),
        ("sh", "bash"),
        ("c#", "csharp"),
        ("jsx", "javascript"),
        ("res", "rescript"),
    ],
)
def test_canonical(written, name):
    assert canonical(written) == name
