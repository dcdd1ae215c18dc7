"""Where the course's files live, independent of the notebook's working directory."""
from pathlib import Path

REPO_ROOT: Path = Path(__file__).resolve().parents[1]
DATA_DIR: Path = REPO_ROOT / "data"

# The packages a student's notebook imports: the release ships them and the grader's sandbox stages them.
STUDENT_PACKAGES = ("utils", "studies")
