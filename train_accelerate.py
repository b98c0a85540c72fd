"""`accelerate launch train_accelerate.py --model … --data … --out …`: the same flags and code as
`chromosomenet train`, started by Accelerate on one or many GPUs / nodes (see README)."""
import sys

from chromosomenet.apps.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
