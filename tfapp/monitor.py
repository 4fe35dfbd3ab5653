"""python -m tfapp.monitor --model EXPORT --input STREAM: the sentiment task's stream
monitoring scenario (see tasks/sentiment/monitor.py)."""
import tfapp  # noqa: F401
from tasks.sentiment.monitor import main

if __name__ == "__main__":
    main()
