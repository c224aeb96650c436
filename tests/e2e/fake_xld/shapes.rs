//! The XML XL Deploy answers with, and the little the fake reads from deployment specs.

use quick_xml::Reader;
use quick_xml::escape::escape;
use quick_xml::events::Event;

use super::world::{Task, TaskKind};

/// What the fake needs from a `<deployment>` spec it is sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Spec {
    /// `INITIAL`, `UPDATE` or `UNDEPLOYMENT`.
    pub kind: String,
    /// `Applications/App/2.2`
    pub package: String,
    /// `Environments/Prod`
    pub environment: String,
    /// `Environments/Prod/App`
    pub deployed_application: String,
    /// `<orchestrator><value>..</value></orchestrator>` of the deployed application.
    pub orchestrators: Vec<String>,
}

/// Reads a spec with a real XML parser; `None` when the body is not one.
pub fn read_spec(body: &str) -> Option<Spec> {
    let mut reader = Reader::from_str(body);
    let mut spec = Spec::default();
    let mut path: Vec<String> = Vec::new();
    let mut is_root_deployment = false;
    loop {
        let event = reader.read_event().ok()?;
        let (e, is_empty) = match &event {
            Event::Start(e) => (e, false),
            Event::Empty(e) => (e, true),
            Event::End(_) => {
                path.pop();
                continue;
            }
            Event::Text(t) => {
                if path.last().map(String::as_str) == Some("value")
                    && path.iter().any(|p| p == "orchestrator")
                {
                    spec.orchestrators.push(t.decode().ok()?.trim().to_string());
                }
                continue;
            }
            Event::Eof => break,
            _ => continue,
        };
        let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
        let attr = |key: &str| {
            e.try_get_attribute(key).ok().flatten().and_then(|a| {
                a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                    .ok()
                    .map(|v| v.into_owned())
            })
        };
        let in_application = path.len() == 2 && path[1] == "application";
        match name.as_str() {
            "deployment" if path.is_empty() => {
                is_root_deployment = true;
                spec.kind = attr("type").unwrap_or_default();
            }
            _ if in_application => spec.deployed_application = attr("id").unwrap_or_default(),
            "version" if path.len() == 3 => spec.package = attr("ref").unwrap_or_default(),
            "environment" if path.len() == 3 => {
                spec.environment = attr("ref").unwrap_or_default();
            }
            _ => {}
        }
        if !is_empty {
            path.push(name);
        }
    }
    (is_root_deployment && !spec.package.is_empty()).then_some(spec)
}

fn app_name(package: &str) -> &str {
    package.rsplit('/').nth(1).unwrap_or(package)
}

/// A deployment spec as `prepare/*` answers; `mapped` adds the deployeds `prepare/deployeds`
/// generates; `validation` nests `<validation-messages>` in the first deployed.
pub fn deployment(
    id: &str,
    kind: &str,
    spec: &Spec,
    mapped: bool,
    validation: &[(String, String)],
) -> String {
    let app = app_name(&spec.package);
    let package = escape(spec.package.as_str());
    let environment = escape(spec.environment.as_str());
    let orchestrator = if spec.orchestrators.is_empty() {
        "<orchestrator/>".to_string()
    } else {
        let values: String = spec
            .orchestrators
            .iter()
            .map(|o| format!("<value>{}</value>", escape(o.as_str())))
            .collect();
        format!("<orchestrator>{values}</orchestrator>")
    };
    let container = "Infrastructure/Prod/Appserver-1/JBoss";
    let messages: String = validation
        .iter()
        .map(|(ci, text)| {
            format!(
                r#"<validation-message ci="{}" property="contextRoot" level="ERROR">{}</validation-message>"#,
                escape(ci.as_str()),
                escape(text.as_str())
            )
        })
        .collect();
    let messages = if messages.is_empty() {
        String::new()
    } else {
        format!("<validation-messages>{messages}</validation-messages>")
    };
    let deployeds = if mapped && kind != "UNDEPLOYMENT" {
        format!(
            r#"<deployeds><jbossas.EarModule id="{container}/{app}-ear"><deployable ref="{package}/{app}-ear"/><container ref="{container}"/><placeholders/>{messages}</jbossas.EarModule><sql.ExecutedSqlScripts id="Infrastructure/Prod/Database-1/MySql/sql"><deployable ref="{package}/sql"/><container ref="Infrastructure/Prod/Database-1/MySql"/><placeholders/></sql.ExecutedSqlScripts></deployeds>"#
        )
    } else {
        "<deployeds/>".to_string()
    };
    format!(
        r#"<deployment id="{id}" type="{kind}">
  <application>
    <udm.DeployedApplication id="{environment}/{app}">
      <version ref="{package}"/>
      <environment ref="{environment}"/>
      <deployeds/>
      {orchestrator}
      <optimizePlan>true</optimizePlan>
    </udm.DeployedApplication>
  </application>
  {deployeds}
  <deployables>
    <ci ref="{package}/{app}-ear" type="jee.Ear"/>
    <ci ref="{package}/sql" type="sql.SqlScripts"/>
  </deployables>
  <containers>
    <ci ref="{container}" type="jbossas.ServerV5"/>
    <ci ref="Infrastructure/Prod/Database-1/MySql" type="sql.MySqlClient"/>
  </containers>
</deployment>"#
    )
}

/// `GET /deployit/task/{id}`: a `TaskState`.
pub fn task(id: &str, state: &str, description: &str) -> String {
    format!(
        r#"<task id="{id}" currentStep="1" totalSteps="4" failures="0" state="{state}" state2="{state}" owner="admin">
  <description>{}</description>
  <startDate>2014-08-08T19:51:17.993+0000</startDate>
  <currentSteps><current>1</current></currentSteps>
  <metadata><taskType>UPGRADE</taskType></metadata>
</task>"#,
        escape(description)
    )
}

/// `GET /deployit/tasks/v2/current`: a list of `TaskWithBlock`, each with the metadata XL
/// Deploy documents (`application`, `environment`, `environment_id`, `version`, `taskType`).
pub fn active_tasks<'a>(tasks: impl Iterator<Item = (&'a str, &'a Task)>) -> String {
    let mut out = String::from("<list>");
    for (id, task) in tasks {
        let (environment, app, package) = match &task.kind {
            TaskKind::Deploy {
                environment,
                app,
                package,
                previous,
            } => (environment, app, package.as_ref().or(previous.as_ref())),
            TaskKind::Rollback {
                environment,
                app,
                restore,
            } => (environment, app, restore.as_ref()),
        };
        let version = package
            .and_then(|p| p.rsplit('/').next())
            .unwrap_or_default();
        let env_name = environment.rsplit('/').next().unwrap_or_default();
        let state = &task.state;
        let task_type = task.kind.task_type();
        out.push_str(&format!(
            r#"<task id="{id}" failures="{}" owner="admin" state="{state}">
  <description>{task_type} of {}</description>
  <activeBlocks/>
  <metadata><application>{}</application><environment>{}</environment><taskType>{task_type}</taskType><environment_id>{}</environment_id><version>{}</version></metadata>
  <block id="0" state="{state}" description="Deployment" root="true"/>
</task>"#,
            task.runs_failed,
            escape(format!("{environment}/{app}").as_str()),
            escape(app.as_str()),
            escape(env_name),
            escape(environment.as_str()),
            escape(version),
        ));
    }
    out.push_str("</list>");
    out
}

/// `GET /deployit/repository/ci/Environments/Env/App`.
pub fn deployed_application(environment: &str, app: &str, package: &str) -> String {
    format!(
        r#"<udm.DeployedApplication id="{environment}/{app}" token="t-1"><version ref="{package}"/><environment ref="{environment}"/><deployeds/><orchestrator/></udm.DeployedApplication>"#
    )
}
