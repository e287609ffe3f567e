import sys
from pathlib import Path

# Make the shared helpers (scenario_runner) importable in every import mode.
sys.path.insert(0, str(Path(__file__).resolve().parent))
