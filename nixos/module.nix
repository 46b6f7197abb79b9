# NixOS module for Circus, with the options of the seed's README:
#
#   imports = [ circus.nixosModules.default ];
#   services.circus = {
#     enable = true;
#     server.enable = true;          # circus-server.service
#     evaluator.enable = true;       # circus-evaluator.service
#     queueRunner.enable = true;     # circus-queue-runner.service
#     settings.server.host = "0.0.0.0";
#   };
#
# The seed's three daemons are one `circus` executable here: each enabled daemon is its
# own unit running `circus run --roles=<role>`, so each restarts and logs on its own.
{ config, lib, pkgs, ... }:

let
  inherit (lib) mkEnableOption mkOption mkIf mkDefault types;

  cfg = config.services.circus;
  toml = pkgs.formats.toml { };
  stateDir = "/var/lib/circus";
  configFile = toml.generate "circus.toml" cfg.settings;

  # Option name (the seed's) -> unit name (the seed's daemon) and role of `circus run`.
  daemons = {
    server = {
      unit = "circus-server";
      role = "server";
      description = "Circus server: dashboard, REST and Hydra APIs, binary cache";
    };
    evaluator = {
      unit = "circus-evaluator";
      role = "evaluator";
      description = "Circus evaluator: jobsets into builds";
    };
    queueRunner = {
      unit = "circus-queue-runner";
      role = "runner";
      description = "Circus queue runner: builds";
    };
  };
  enabled = lib.filterAttrs (name: _: cfg.${name}.enable) daemons;

  localDatabase = lib.optional cfg.database.createLocally "postgresql.service";

  # Every unit reads the same rendered file; CIRCUS_* variables would override it, so
  # none are set here.
  environment.CIRCUS_CONFIG_FILE = "${configFile}";

  runAs = {
    User = "circus";
    Group = "circus";
    StateDirectory = "circus";
    WorkingDirectory = stateDir;
  };

  daemonService = d: {
    inherit (d) description;
    wantedBy = [ "multi-user.target" ];
    wants = [ "network-online.target" ];
    requires = [ "circus-migrate.service" ] ++ localDatabase;
    after = [ "network-online.target" "nix-daemon.service" "circus-migrate.service" ]
      ++ localDatabase;
    # Evaluating and building run nix; jobset inputs are fetched with git, over ssh
    # for private repositories, and remote builders are reached with ssh too.
    path = [ config.nix.package pkgs.git pkgs.openssh pkgs.bubblewrap ];
    inherit environment;
    serviceConfig = runAs // {
      Type = "exec";
      ExecStart = "${cfg.package}/bin/circus run --roles=${d.role}";
      # SIGTERM to circus only: it gives running builds `shutdown_grace` seconds and
      # stops its nix children itself, rather than systemd killing them mid-build.
      KillMode = "mixed";
      TimeoutStopSec = (cfg.settings.queue_runner.shutdown_grace or 30) + 30;
      Restart = "on-failure";
      RestartSec = 5;
    };
  };
in
{
  options.services.circus = {
    enable = mkEnableOption "Circus, continuous integration for Nix projects";

    package = mkOption {
      type = types.package;
      description = ''
        The Circus package, providing `bin/circus`; the SQL, templates and static files
        are inside its Python package. The flake's `nixosModules.default` defaults this
        to the flake's `packages.<system>.circus`.
      '';
    };

    migratePackage = mkOption {
      type = types.package;
      default = cfg.package;
      defaultText = lib.literalExpression "config.services.circus.package";
      description = ''
        The package whose `bin/circus migrate up` runs (as `circus-migrate.service`)
        before any daemon starts.
      '';
    };

    server.enable = mkEnableOption "the server (dashboard, REST and Hydra APIs, binary cache) as circus-server.service";
    evaluator.enable = mkEnableOption "the evaluator as circus-evaluator.service";
    queueRunner.enable = mkEnableOption "the queue runner (builds) as circus-queue-runner.service";

    settings = mkOption {
      type = toml.type;
      default = { };
      example = {
        server.host = "127.0.0.1";
        queue_runner.workers = 8;
      };
      description = ''
        Circus configuration, rendered to TOML and passed as CIRCUS_CONFIG_FILE; the keys
        are those of the configuration table. Secrets belong in files (`key_file`), not
        here: the rendered file is in the world-readable Nix store.
      '';
    };

    database.createLocally = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Run PostgreSQL on this machine with a `circus` database owned by the `circus`
        user, reached over its Unix socket. Turn off on builder machines and set
        `settings.database.url` to the head node's database.
      '';
    };
  };

  config = mkIf cfg.enable {
    assertions = [{
      # The package has no embedded PostgreSQL (it is not in nixpkgs): without a URL
      # Circus would try to start one and fail at run time instead of here.
      assertion = cfg.settings ? database.url;
      message = "services.circus: set database.createLocally, or settings.database.url to a PostgreSQL server.";
    }];
    warnings = lib.optional (enabled == { })
      "services.circus is enabled but runs nothing: enable server, evaluator or queueRunner.";

    services.circus.settings = {
      state_dir = mkDefault stateDir;
      database.url = mkIf cfg.database.createLocally
        (mkDefault "postgresql:///circus?host=/run/postgresql");
      # Their defaults are under /tmp, which a reboot or systemd-tmpfiles may empty
      # under a running evaluation or build.
      evaluator.work_dir = mkDefault "${stateDir}/evaluator";
      queue_runner.work_dir = mkDefault "${stateDir}/runner";
    };

    users.users.circus = {
      isSystemUser = true;
      group = "circus";
      # ~/.ssh of this user holds the keys and known hosts for git and remote builders.
      home = stateDir;
    };
    users.groups.circus = { };

    # The runner builds through the nix-daemon; only a trusted user may pass it build
    # options (timeouts, max-silent-time) and copy unsigned paths to and from other
    # stores (remote builders, cache upload).
    nix.settings.trusted-users = [ "circus" ];

    services.postgresql = mkIf cfg.database.createLocally {
      enable = true;
      ensureDatabases = [ "circus" ];
      # Peer authentication over the socket: the `circus` system user is the owner.
      ensureUsers = [{ name = "circus"; ensureDBOwnership = true; }];
    };

    # Roots for kept builds go under Nix's gcroots, where only root may make directories.
    systemd.tmpfiles.rules = [ "d /nix/var/nix/gcroots/per-user/circus 0755 circus circus -" ];

    systemd.services = lib.mapAttrs' (_: d: lib.nameValuePair d.unit (daemonService d)) enabled // {
      # `circus run` applies pending migrations too; this unit runs them first with
      # migratePackage, so a failing migration is one failed unit that names itself
      # and no daemon starts on a schema it does not know. On an up-to-date database
      # (a builder machine after the head node) it changes nothing.
      circus-migrate = {
        description = "Circus database migrations";
        wants = [ "network-online.target" ];
        requires = localDatabase;
        after = [ "network-online.target" ] ++ localDatabase;
        inherit environment;
        serviceConfig = runAs // {
          Type = "oneshot";
          # Stays active, so a daemon's restart does not rerun it; a new migratePackage
          # changes the unit, and nixos-rebuild switch restarts it.
          RemainAfterExit = true;
          ExecStart = "${cfg.migratePackage}/bin/circus migrate up";
        };
      };
    };
  };
}
