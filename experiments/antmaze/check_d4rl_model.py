"""Check offreg's AntMaze port against D4RL's own model files: maps, compiled MuJoCo model, trajectories.

Usage: ``python experiments/antmaze/check_d4rl_model.py D4RL_CHECKOUT`` where ``D4RL_CHECKOUT`` is a clone
of Farama-Foundation/D4RL, or a folder holding just the two files read here. ``check_d4rl_model.txt``
beside this file is its output for D4RL commit 89141a689b0353b0dac3da5cba60da4b1b16254d.

Without mujoco-py or gym: the script reads the maze maps from ``d4rl/locomotion/maze_env.py`` (the
constants above ``class MazeEnv``), builds the maze XML from ``d4rl/locomotion/assets/ant.xml`` the way
``MazeEnv.__init__`` does, compiles both models with the installed ``mujoco`` and compares every physics
array of the two models (visual-only arrays - textures, materials, lights, colours, names - are counted
apart), then steps both with the same 200 random controls (x 5 simulator steps) and compares the states
bit for bit.
"""

from __future__ import annotations

import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import mujoco
import numpy as np

from offreg.envs.antmaze import MAZE_HEIGHT, MAZE_SIZE_SCALING, MAZES, maze_xml

VISUAL = ("tex_", "mat_", "light_", "name", "geom_rgba", "geom_matid", "ntex", "nmat", "nlight", "nnumeric",
          "numeric_", "nnames", "nbuffer", "signature", "_")
D4RL_MAPS = {"umaze": "U_MAZE_TEST", "medium": "BIG_MAZE_TEST", "large": "HARDEST_MAZE_TEST"}


def d4rl_maps(root: Path) -> dict[str, list]:
    source = (root / "d4rl/locomotion/maze_env.py").read_text()
    namespace: dict = {}
    exec(source.split("class MazeEnv")[0].replace("import gym\n", ""), namespace)  # constants only
    return {maze: namespace[name] for maze, name in D4RL_MAPS.items()}


def d4rl_xml(root: Path, maze_map: list) -> str:
    """``MazeEnv.__init__``'s XML: ant.xml plus one box per wall cell, offset so the robot starts at the origin."""
    tree = ET.parse(root / "d4rl/locomotion/assets/ant.xml")
    worldbody = tree.find(".//worldbody")
    s, h = MAZE_SIZE_SCALING, MAZE_HEIGHT
    tx, ty = next((j * s, i * s) for i, row in enumerate(maze_map) for j, c in enumerate(row) if c == "r")
    for i, row in enumerate(maze_map):
        for j, c in enumerate(row):
            if c == 1:
                pos = f"{j * s - tx:f} {i * s - ty:f} {h / 2 * s:f}"
                ET.SubElement(worldbody, "geom", name=f"block_{i}_{j}", pos=pos,
                              size=f"{0.5 * s:f} {0.5 * s:f} {h / 2 * s:f}", type="box", material="", contype="1",
                              conaffinity="1", rgba="0.7 0.5 0.3 1.0")
    with tempfile.NamedTemporaryFile("w", suffix=".xml", delete=False) as f:
        tree.write(f.name)
    return f.name


def main(root: Path) -> int:
    ok = True
    print(f"mujoco {mujoco.__version__}")
    for maze, maze_map in d4rl_maps(root).items():
        ours_map = tuple("".join({1: "#", 0: ".", "r": "r", "g": "g"}[c] for c in row) for row in maze_map)
        same_map = ours_map == MAZES[maze]
        theirs = mujoco.MjModel.from_xml_path(d4rl_xml(root, maze_map))
        ours = mujoco.MjModel.from_xml_string(maze_xml(maze))
        physics, visual = [], []
        for field in dir(theirs):
            a, b = getattr(theirs, field, None), getattr(ours, field, None)
            if isinstance(a, np.ndarray | int | float) and not (
                np.shape(a) == np.shape(b) and np.array_equal(a, b)
            ):
                (visual if field.startswith(VISUAL) else physics).append(field)
        options = [f for f in dir(theirs.opt) if not f.startswith("_")
                   and isinstance(getattr(theirs.opt, f), float | int | np.ndarray)
                   and not np.array_equal(getattr(theirs.opt, f), getattr(ours.opt, f))]
        d_theirs, d_ours = mujoco.MjData(theirs), mujoco.MjData(ours)
        rng = np.random.default_rng(0)
        for _ in range(200):
            d_theirs.ctrl[:] = d_ours.ctrl[:] = rng.uniform(-30, 30, 8)
            for _ in range(5):
                mujoco.mj_step(theirs, d_theirs)
                mujoco.mj_step(ours, d_ours)
        same_traj = np.array_equal(d_theirs.qpos, d_ours.qpos) and np.array_equal(d_theirs.qvel, d_ours.qvel)
        print(f"{maze}: map equal {same_map}; physics arrays that differ {physics or 'none'}; option fields that "
              f"differ {options or 'none'}; 1000 random-control simulator steps bit-identical {same_traj}; "
              f"visual-only arrays that differ: {len(visual)}")
        ok &= same_map and not physics and not options and same_traj
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
