"""Crystal structure files (CIF, POSCAR, extended XYZ, pymatgen JSON, ASE databases) and
pymatgen/ASE objects as materials: parsing, checks, stored form, provenance and loading."""
