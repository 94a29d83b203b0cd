import os

# Tests never touch the developer's database or key files.
os.environ.setdefault("VAR_DIR", os.path.join(os.path.dirname(__file__), "..", "var", "test"))
